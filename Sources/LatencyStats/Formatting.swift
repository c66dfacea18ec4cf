import CommandLineKit

/// Fixed-point formatting without Foundation (report lines are printed often).
public enum Fixed {
    /// The kit's fixed-point formatter (one implementation for every tool).
    public static func format(_ value: Double, decimals: Int) -> String { Human.fixed(value, decimals: decimals) }
}
