import Hub
/// The monthly trend as an SVG bar chart, drawn on the server (no script, no CDN). Sized by
/// the stylesheet (`svg.trend`), never by an inline style, which the pages' CSP refuses.
enum TrendChart {
    static func svg(_ periods: [(period: String, raised: Int, closed: Int)]) -> String {
        guard !periods.isEmpty else { return "<p class=\"empty\">暂无数据</p>" }
        let maxV = max(1, periods.map(\.raised).max()!)
        let w = 60, h = 160, left = 40
        // Its natural size in attributes; the stylesheet only lets it shrink to a narrow screen.
        let width = max(180, left + periods.count * w + 20), height = h + 50
        var s = "<svg role=\"img\" aria-label=\"逐月预警与销号\" viewBox=\"0 0 \(width) \(height)\" width=\"\(width)\" height=\"\(height)\" class=\"trend\">"
        s += "<line x1=\"\(left)\" y1=\"\(h)\" x2=\"\(left + periods.count * w)\" y2=\"\(h)\" stroke=\"#8aa0b4\"/>"
        for (i, p) in periods.enumerated() {
            let x = left + i * w + 8
            let rh = Int(Double(p.raised) / Double(maxV) * Double(h - 20))
            let ch = Int(Double(p.closed) / Double(maxV) * Double(h - 20))
            s += "<rect x=\"\(x)\" y=\"\(h - rh)\" width=\"20\" height=\"\(rh)\" fill=\"#1f5fa8\"><title>\(p.period) 立案 \(p.raised)</title></rect>"
            s += "<rect x=\"\(x + 22)\" y=\"\(h - ch)\" width=\"20\" height=\"\(ch)\" fill=\"#27ae60\"><title>\(p.period) 销号 \(p.closed)</title></rect>"
            s += "<text x=\"\(x + 21)\" y=\"\(h - rh - 4)\" font-size=\"11\" text-anchor=\"middle\">\(p.raised)</text>"
            s += "<text x=\"\(x + 21)\" y=\"\(h + 16)\" font-size=\"12\" text-anchor=\"middle\">\(XLSXWriter.escape(p.period))</text>"
        }
        s += "<rect x=\"\(left)\" y=\"\(h + 28)\" width=\"12\" height=\"12\" fill=\"#1f5fa8\"/><text x=\"\(left + 16)\" y=\"\(h + 39)\" font-size=\"12\">立案</text>"
        s += "<rect x=\"\(left + 60)\" y=\"\(h + 28)\" width=\"12\" height=\"12\" fill=\"#27ae60\"/><text x=\"\(left + 76)\" y=\"\(h + 39)\" font-size=\"12\">销号</text>"
        return s + "</svg>"
    }
}
