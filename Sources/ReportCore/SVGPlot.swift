import CommandLineKit
import Foundation

/// A linear or logarithmic mapping from data values to pixels, with readable tick values.
struct PlotScale: Sendable, Equatable {
    enum Kind: Sendable, Equatable { case linear, log10 }

    var kind: Kind
    var domain: ClosedRange<Double>
    /// Pixels: `from` is where the domain's lower bound goes (for y, the bottom).
    var range: PixelSpan

    /// A range that includes `values` (and 0 for a linear scale starting there), widened when flat.
    init(kind: Kind = .linear, values: [Double], includeZero: Bool = true, range: PixelSpan) {
        let finite = values.filter { $0.isFinite && (kind == .linear || $0 > 0) }
        var low = finite.min() ?? (kind == .linear ? 0 : 1)
        var high = finite.max() ?? (kind == .linear ? 1 : 10)
        if kind == .linear, includeZero { low = Swift.min(low, 0) }
        if high <= low { high = kind == .linear ? low + Swift.max(abs(low), 1) : low * 10 }
        if kind == .linear {
            let step = Self.niceStep((high - low) / 5)
            low = (low / step).rounded(.down) * step
            high = (high / step).rounded(.up) * step
        } else {
            low = pow(10, log10(low).rounded(.down))
            high = pow(10, log10(high).rounded(.up))
        }
        self.kind = kind
        domain = low...high
        self.range = range
    }

    func callAsFunction(_ value: Double) -> Double {
        let (low, high) = (domain.lowerBound, domain.upperBound)
        let fraction: Double
        switch kind {
        case .linear: fraction = (value - low) / (high - low)
        case .log10: fraction = (log10(Swift.max(value, low)) - log10(low)) / (log10(high) - log10(low))
        }
        let clamped = fraction.isFinite ? Swift.min(Swift.max(fraction, -0.05), 1.05) : 0
        return range.from + clamped * (range.to - range.from)
    }

    /// 1, 2 or 5 times a power of ten, at least `raw`.
    static func niceStep(_ raw: Double) -> Double {
        guard raw > 0, raw.isFinite else { return 1 }
        let magnitude = pow(10, log10(raw).rounded(.down))
        for factor in [1.0, 2, 5, 10] where factor * magnitude >= raw { return factor * magnitude }
        return 10 * magnitude
    }

    var ticks: [Double] {
        let (low, high) = (domain.lowerBound, domain.upperBound)
        switch kind {
        case .linear:
            let step = Self.niceStep((high - low) / 5)
            var values: [Double] = []
            var value = low
            while value <= high + step / 1e6, values.count < 20 {
                values.append(abs(value) < step / 1e9 ? 0 : value)
                value += step
            }
            return values
        case .log10:
            var values: [Double] = []
            var value = low
            while value <= high * 1.000_001, values.count < 20 {
                values.append(value)
                value *= 10
            }
            return values
        }
    }
}

struct PixelSpan: Sendable, Equatable {
    var from: Double
    var to: Double
}

/// Latencies are plotted in one unit per chart: ms below a second, else s.
struct LatencyUnit: Sendable, Equatable {
    var symbol: String
    var scale: Double

    static func suited(to maxSeconds: Double?) -> LatencyUnit {
        (maxSeconds ?? 0) >= 1 ? LatencyUnit(symbol: "s", scale: 1) : LatencyUnit(symbol: "ms", scale: 1000)
    }
}

/// Builds one SVG chart: a plot area with axes, ticks, labels (with units) and the marks added.
struct SVGChart {
    let width: Double
    let height: Double
    let left = 70.0
    let right: Double
    let top = 20.0
    let bottom = 48.0
    var body: [String] = []
    let title: String
    let cssClass: String

    init(title: String, cssClass: String, width: Double = 900, height: Double = 320, rightAxis: Bool = false) {
        self.title = title
        self.cssClass = cssClass
        self.width = width
        self.height = height
        right = rightAxis ? 70 : 20
    }

    var xRange: PixelSpan { PixelSpan(from: left, to: width - right) }
    /// From the bottom of the plot to its top: SVG's y grows downwards.
    var yRange: PixelSpan { PixelSpan(from: height - bottom, to: top) }

    mutating func add(_ element: String) { body.append(element) }

    mutating func xAxis(_ scale: PlotScale, label: String, format: (Double) -> String) {
        let y = height - bottom
        add(#"<line class="axis" x1="\#(f(left))" y1="\#(f(y))" x2="\#(f(width - right))" y2="\#(f(y))"/>"#)
        for tick in scale.ticks {
            let x = scale(tick)
            add(#"<line class="grid" x1="\#(f(x))" y1="\#(f(top))" x2="\#(f(x))" y2="\#(f(y))"/>"#)
            add(#"<text class="tick" x="\#(f(x))" y="\#(f(y + 16))" text-anchor="middle">\#(HTML.escape(format(tick)))</text>"#)
        }
        add(#"<text class="label" x="\#(f((left + width - right) / 2))" y="\#(f(height - 8))" text-anchor="middle">\#(HTML.escape(label))</text>"#)
    }

    mutating func yAxis(_ scale: PlotScale, label: String, rightSide: Bool = false, format: (Double) -> String) {
        let x = rightSide ? width - right : left
        add(#"<line class="axis" x1="\#(f(x))" y1="\#(f(top))" x2="\#(f(x))" y2="\#(f(height - bottom))"/>"#)
        for tick in scale.ticks {
            let y = scale(tick)
            if !rightSide {
                add(#"<line class="grid" x1="\#(f(left))" y1="\#(f(y))" x2="\#(f(width - right))" y2="\#(f(y))"/>"#)
            }
            let anchor = rightSide ? "start" : "end"
            let tx = rightSide ? x + 6 : x - 6
            add(#"<text class="tick" x="\#(f(tx))" y="\#(f(y + 4))" text-anchor="\#(anchor)">\#(HTML.escape(format(tick)))</text>"#)
        }
        let lx = rightSide ? width - 14 : 16
        let ly = (top + height - bottom) / 2
        add(#"<text class="label" x="\#(f(lx))" y="\#(f(ly))" text-anchor="middle" transform="rotate(-90 \#(f(lx)) \#(f(ly)))">\#(HTML.escape(label))</text>"#)
    }

    func render() -> String {
        #"<svg xmlns="http://www.w3.org/2000/svg" class="chart \#(cssClass)" viewBox="0 0 \#(f(width)) \#(f(height))" width="\#(f(width))" height="\#(f(height))" role="img" aria-label="\#(HTML.escape(title))">"#
            + "<title>\(HTML.escape(title))</title>" + body.joined() + "</svg>"
    }
}

/// A tick's number: 3 significant digits without a trailing `.0` (`20`, `2.5`, `0.25`).
func tickText(_ value: Double) -> String {
    var text = Human.significant(value)
    if text.contains(".") {
        while text.hasSuffix("0") { text.removeLast() }
        if text.hasSuffix(".") { text.removeLast() }
    }
    return text
}

/// Coordinates with two decimals: small files, no exponent notation.
func f(_ value: Double) -> String { Human.fixed(value.isFinite ? value : 0, decimals: 2) }

enum HTML {
    /// Text for HTML content and attribute values. (Protocol's XMLEscaping does the same for
    /// VOEvents; vtp-report does not link Protocol and its libxml2 for it.)
    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
            .replacingOccurrences(of: "'", with: "&#39;")
    }

    /// A table: header cells, rows of cells (already text; escaped here).
    static func table(_ header: [String], _ rows: [[String]], caption: String? = nil, cssClass: String = "numbers") -> String {
        var html = #"<table class="\#(cssClass)">"#
        if let caption { html += "<caption>\(escape(caption))</caption>" }
        html += "<thead><tr>" + header.map { "<th>\(escape($0))</th>" }.joined() + "</tr></thead><tbody>"
        for row in rows { html += "<tr>" + row.map { "<td>\(escape($0))</td>" }.joined() + "</tr>" }
        return html + "</tbody></table>"
    }
}
