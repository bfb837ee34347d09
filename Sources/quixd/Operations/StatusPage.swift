import Foundation
import QuixPipeline

/// The status page at `/` of the operations port: every pipeline at a glance, rendered on the
/// server with its own small CSS and script (nothing from a CDN, so it works offline). The
/// script fetches the page again every 5 s and swaps its content in; without scripts a meta
/// refresh does it. One column on a phone (375 px), a grid on a desktop; the failures table
/// becomes a list on a phone, and other wide tables scroll inside their card.
enum StatusPage {
    static func html(_ pipelines: [PipelineStatusReport], now: Date) -> String {
        let body = pipelines.isEmpty ? "<p class=\"empty\">No pipelines.</p>" : pipelines.map { card($0, now: now) }.joined(separator: "\n")
        return """
            <!doctype html>
            <html lang="en">
            <head>
            <meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <noscript><meta http-equiv="refresh" content="5"></noscript>
            <title>quixd status</title>
            <style>\(style)</style>
            </head>
            <body>
            <header><h1>quixd</h1><span class="muted">\(escape(timeText(now))) · refreshes every 5 s · <a href="/status.json">status.json</a> · <a href="/metrics">metrics</a></span></header>
            <main id="pipelines">
            \(body)
            </main>
            <script>\(script)</script>
            </body>
            </html>
            """
    }

    private static func card(_ pipeline: PipelineStatusReport, now: Date) -> String {
        let state = pipeline.ready ? "ready" : (pipeline.phase == "failed" ? "failed" : "waiting")
        let checkpoint =
            pipeline.lastCheckpoint.map { last in
                "\(ago(now.timeIntervalSince1970 - last)) ago, took \(String(format: "%.0f", (pipeline.lastCheckpointSeconds ?? 0) * 1_000)) ms"
            } ?? "none yet"
        let lag = pipeline.partitions.compactMap(\.lag).reduce(0, +)
        let timeLag = pipeline.partitions.compactMap(\.timeLagMilliseconds).max()
        return """
            <section class="pipeline" data-pipeline="\(escape(pipeline.name))">
            <h2>\(escape(pipeline.name)) <span class="badge \(state)">\(escape(pipeline.phase))</span></h2>
            <p class="reason">\(escape(pipeline.reason))</p>
            <dl class="facts">
            <div><dt>input</dt><dd>\(escape(pipeline.input))</dd></div>
            <div><dt>outputs</dt><dd>\(escape(pipeline.outputs.joined(separator: ", ")))</dd></div>
            <div><dt>in</dt><dd>\(rate(pipeline.inputRate)) msg/s \(sparkline(pipeline.inputHistory))</dd></div>
            <div><dt>out</dt><dd>\(rate(pipeline.outputRate)) msg/s \(sparkline(pipeline.outputHistory))</dd></div>
            <div><dt>lag</dt><dd>\(lag) messages\(timeLag.map { ", \(ago(Double($0) / 1_000)) of data" } ?? "")</dd></div>
            <div><dt>checkpoints</dt><dd>\(pipeline.checkpoints) · last \(checkpoint)</dd></div>
            <div><dt>rebalances</dt><dd>\(pipeline.rebalances)</dd></div>
            </dl>
            \(partitions(pipeline))
            \(failures(pipeline, now: now))
            </section>
            """
    }

    private static func partitions(_ pipeline: PipelineStatusReport) -> String {
        guard !pipeline.partitions.isEmpty else { return "<p class=\"muted\">No partitions on this replica.</p>" }
        let rows = pipeline.partitions.map { partition in
            "<tr class=\"partition\"><td>\(escape(partition.topic))[\(partition.partition)]</td><td>\(partition.lag.map(String.init) ?? "–")</td>"
                + "<td>\(partition.timeLagMilliseconds.map { ago(Double($0) / 1_000) } ?? "–")</td><td>\(partition.stateBytes.map(bytes) ?? "–")</td></tr>"
        }
        return """
            <h3>Partitions on this replica</h3>
            <div class="scroll"><table><thead><tr><th>partition</th><th>lag</th><th>data lag</th><th>state</th></tr></thead>
            <tbody>\(rows.joined())</tbody></table></div>
            """
    }

    private static func failures(_ pipeline: PipelineStatusReport, now: Date) -> String {
        guard !pipeline.failures.isEmpty else { return "<p class=\"muted\">No failed messages since start.</p>" }
        let rows = pipeline.failures.map { failure in
            "<tr class=\"failure\"><td data-label=\"when\">\(ago(now.timeIntervalSince1970 - failure.time)) ago</td>"
                + "<td data-label=\"what\">\(escape(failure.outcome))</td><td data-label=\"stage\">\(escape(failure.stage))</td>"
                + "<td data-label=\"error\"><code>\(escape(failure.code))</code> \(escape(failure.error))</td>"
                + "<td data-label=\"stream\">\(escape(failure.stream))</td><td data-label=\"source\">\(escape(failure.source))</td></tr>"
        }
        return """
            <h3>Last failed messages</h3>
            <div class="scroll"><table class="stack"><thead><tr><th>when</th><th>what</th><th>stage</th><th>error</th><th>stream</th><th>source</th></tr></thead>
            <tbody>\(rows.joined())</tbody></table></div>
            """
    }

    /// The samples as an inline SVG line, scaled to their maximum.
    static func sparkline(_ values: [Double]) -> String {
        guard values.count > 1 else { return "<svg class=\"spark\" viewBox=\"0 0 120 24\" aria-hidden=\"true\"></svg>" }
        let top = max(values.max() ?? 0, 1)
        let points = values.enumerated().map { index, value in
            String(format: "%.1f,%.1f", Double(index) * 120 / Double(values.count - 1), 23 - value / top * 22)
        }
        return "<svg class=\"spark\" viewBox=\"0 0 120 24\" preserveAspectRatio=\"none\" aria-label=\"last 10 minutes\"><polyline points=\"\(points.joined(separator: " "))\"/></svg>"
    }

    static func escape(_ text: String) -> String {
        var escaped = ""
        for character in text {
            switch character {
            case "&": escaped += "&amp;"
            case "<": escaped += "&lt;"
            case ">": escaped += "&gt;"
            case "\"": escaped += "&quot;"
            case "'": escaped += "&#39;"
            default: escaped.append(character)
            }
        }
        return escaped
    }

    private static func rate(_ value: Double) -> String { value < 10 ? String(format: "%.1f", value) : String(format: "%.0f", value) }

    private static func ago(_ seconds: Double) -> String {
        switch max(0, seconds) {
        case ..<1: String(format: "%.0f ms", seconds * 1_000)
        case ..<120: String(format: "%.0f s", seconds)
        case ..<7_200: String(format: "%.0f min", seconds / 60)
        default: String(format: "%.1f h", seconds / 3_600)
        }
    }

    private static func bytes(_ count: Int64) -> String {
        count < 1 << 20 ? "\(count / 1_024) KiB" : String(format: "%.1f MiB", Double(count) / Double(1 << 20))
    }

    private static func timeText(_ date: Date) -> String { date.formatted(.iso8601) }

    private static let style = """
        :root{color-scheme:light dark;--fg:#1d2330;--muted:#667085;--card:#fff;--bg:#f3f5f8;--line:#d9dee7;--ok:#12805c;--warn:#b54708;--bad:#c01048}
        @media (prefers-color-scheme:dark){:root{--fg:#e6e9ef;--muted:#98a2b3;--card:#1b2230;--bg:#111722;--line:#2c3546}}
        *{box-sizing:border-box}body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:var(--fg);background:var(--bg)}
        header{display:flex;flex-wrap:wrap;gap:.25rem 1rem;align-items:baseline;padding:1rem 1rem .5rem}h1{margin:0;font-size:1.4rem}
        a{color:inherit}.muted{color:var(--muted)}main{display:grid;gap:1rem;padding:0 1rem 1rem;grid-template-columns:repeat(auto-fill,minmax(min(100%,34rem),1fr))}
        .pipeline{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:1rem;min-width:0}
        h2{margin:0;font-size:1.15rem;display:flex;gap:.5rem;align-items:center;flex-wrap:wrap}h3{font-size:.95rem;margin:1rem 0 .4rem}
        .badge{font-size:.75rem;padding:.1rem .5rem;border-radius:99px;color:#fff;background:var(--warn)}.badge.ready{background:var(--ok)}.badge.failed{background:var(--bad)}
        .reason{margin:.3rem 0 .6rem;color:var(--muted);overflow-wrap:anywhere}
        .facts{display:grid;grid-template-columns:repeat(auto-fill,minmax(10rem,1fr));gap:.4rem 1rem;margin:0}.facts dt{font-size:.75rem;color:var(--muted)}.facts dd{margin:0;overflow-wrap:anywhere}
        .spark{display:block;width:100%;max-width:10rem;height:1.5rem}.spark polyline{fill:none;stroke:currentColor;stroke-width:1.5;vector-effect:non-scaling-stroke}
        .scroll{overflow-x:auto}table{border-collapse:collapse;width:100%;font-size:.85rem}th,td{text-align:left;padding:.25rem .5rem;border-bottom:1px solid var(--line);vertical-align:top}
        th{color:var(--muted);font-weight:600}td code{font-size:.8rem}
        @media (max-width:40rem){table.stack thead{display:none}table.stack tr{display:block;border-bottom:1px solid var(--line);padding:.3rem 0}
        table.stack td{display:block;border:0;padding:.05rem .25rem;overflow-wrap:anywhere}table.stack td::before{content:attr(data-label) " ";color:var(--muted);font-size:.75rem}}
        """

    private static let script = """
        setInterval(async()=>{try{const r=await fetch(location.pathname,{cache:"no-store"});if(!r.ok)return;
        const d=new DOMParser().parseFromString(await r.text(),"text/html");
        document.getElementById("pipelines").replaceWith(d.getElementById("pipelines"));
        document.querySelector("header").replaceWith(d.querySelector("header"))}catch(e){}},5000);
        """
}
