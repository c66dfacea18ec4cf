/// RFC 4180 quoting, one copy for every CSV the tools write.
public enum CSV {
    public static func field(_ value: String) -> String {
        guard value.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return value }
        return "\"" + value.split(separator: "\"", omittingEmptySubsequences: false).joined(separator: "\"\"") + "\""
    }

    public static func row(_ values: [String]) -> String { values.map(field).joined(separator: ",") }
}

