//! `--plot FILE.svg`: latency by percentile (log-log, the usual HdrHistogram view) and
//! throughput over time, as one self-contained SVG.
//!
//! Written directly rather than with a plotting crate: plotters, the mature one, needs a
//! font backend (font-kit and the system's fontconfig) to place any text, while SVG text
//! is laid out by whatever opens the file.

use std::fmt::Write;

use hdrhistogram::Histogram;

/// A named line.
#[derive(Debug)]
pub struct Series<'a> {
    /// Legend label.
    pub name: &'a str,
    /// Stroke colour.
    pub color: &'a str,
    /// Points (x, y) in data units.
    pub points: Vec<(f64, f64)>,
}

/// The (percentile position, latency µs) curve of `h`: x is `log10(1 / (1 - q))`, so
/// 1 = p90, 2 = p99, 3 = p99.9 ... up to the largest value recorded.
pub fn percentile_curve(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    if h.is_empty() {
        return Vec::new();
    }
    let mut pts: Vec<(f64, f64)> = (0..=100)
        .map(|k| {
            let x = k as f64 / 20.0;
            let q = 1.0 - 10f64.powf(-x);
            (x, h.value_at_quantile(q).max(1) as f64)
        })
        .collect();
    let last = (h.len() as f64).log10().max(0.0);
    pts.retain(|(x, _)| *x < last);
    pts.push((
        last.max(pts.last().map_or(0.0, |p| p.0)),
        h.max().max(1) as f64,
    ));
    pts
}

struct Panel {
    x0: f64,
    y0: f64,
    w: f64,
    h: f64,
    xr: (f64, f64),
    yr: (f64, f64),
    ylog: bool,
}

impl Panel {
    fn px(&self, x: f64) -> f64 {
        self.x0 + (x - self.xr.0) / (self.xr.1 - self.xr.0).max(1e-9) * self.w
    }

    fn py(&self, y: f64) -> f64 {
        let (lo, hi, v) = if self.ylog {
            (
                self.yr.0.log10(),
                self.yr.1.log10(),
                y.max(self.yr.0).log10(),
            )
        } else {
            (self.yr.0, self.yr.1, y)
        };
        self.y0 + self.h - (v - lo) / (hi - lo).max(1e-9) * self.h
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn draw(
    svg: &mut String,
    p: &Panel,
    title: &str,
    xlabels: &[(f64, String)],
    ylabel: &str,
    series: &[Series],
    shade: Option<(f64, f64)>,
) {
    let (x0, y0, w, h) = (p.x0, p.y0, p.w, p.h);
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" font-size="15" font-weight="bold">{}</text>"#,
        x0,
        y0 - 12.0,
        esc(title)
    );
    if let Some((a, b)) = shade {
        let _ = writeln!(
            svg,
            r##"<rect x="{:.1}" y="{y0}" width="{:.1}" height="{h}" fill="#eeeeee"/><text x="{:.1}" y="{:.1}" font-size="11" fill="#888">warm-up</text>"##,
            p.px(a),
            p.px(b) - p.px(a),
            p.px(a) + 3.0,
            y0 + 14.0
        );
    }
    let _ = writeln!(
        svg,
        r##"<rect x="{x0}" y="{y0}" width="{w}" height="{h}" fill="none" stroke="#444"/>"##
    );
    // y ticks: decades on a log axis, five steps on a linear one.
    let mut yticks = Vec::new();
    if p.ylog {
        let mut v = 10f64.powf(p.yr.0.log10().floor());
        while v <= p.yr.1 * 1.0001 {
            if v >= p.yr.0 {
                yticks.push(v);
            }
            v *= 10.0;
        }
    } else {
        yticks = (0..=5)
            .map(|i| p.yr.0 + (p.yr.1 - p.yr.0) * i as f64 / 5.0)
            .collect();
    }
    for v in yticks {
        let y = p.py(v);
        let label = if v >= 1e6 {
            format!("{:.0}M", v / 1e6)
        } else if v >= 1e3 {
            format!("{:.0}k", v / 1e3)
        } else {
            format!("{v:.0}")
        };
        let _ = writeln!(
            svg,
            r##"<line x1="{x0}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end">{label}</text>"##,
            x0 + w,
            x0 - 5.0,
            y + 4.0
        );
    }
    for (x, label) in xlabels {
        let px = p.px(*x);
        let _ = writeln!(
            svg,
            r##"<line x1="{px:.1}" x2="{px:.1}" y1="{y0}" y2="{:.1}" stroke="#ddd"/><text x="{px:.1}" y="{:.1}" font-size="11" text-anchor="middle">{}</text>"##,
            y0 + h,
            y0 + h + 16.0,
            esc(label)
        );
    }
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" font-size="12" transform="rotate(-90 {:.1} {:.1})" text-anchor="middle">{}</text>"#,
        x0 - 48.0,
        y0 + h / 2.0,
        x0 - 48.0,
        y0 + h / 2.0,
        esc(ylabel)
    );
    for (i, s) in series.iter().enumerate() {
        if s.points.is_empty() {
            continue;
        }
        let pts: Vec<String> = s
            .points
            .iter()
            .map(|(x, y)| format!("{:.1},{:.1}", p.px(*x), p.py(*y)))
            .collect();
        let _ = writeln!(
            svg,
            r#"<polyline fill="none" stroke="{}" stroke-width="2" points="{}"/>"#,
            s.color,
            pts.join(" ")
        );
        let ly = y0 + 16.0 + 16.0 * i as f64;
        let _ = writeln!(
            svg,
            r#"<line x1="{:.1}" x2="{:.1}" y1="{ly:.1}" y2="{ly:.1}" stroke="{}" stroke-width="3"/><text x="{:.1}" y="{:.1}" font-size="12">{}</text>"#,
            x0 + w - 170.0,
            x0 + w - 150.0,
            s.color,
            x0 + w - 145.0,
            ly + 4.0,
            esc(s.name)
        );
    }
}

/// The SVG document: latency percentiles (top) and throughput over time (bottom,
/// warm-up shaded).
pub fn render(
    title: &str,
    latency: &[Series],
    throughput: &[Series],
    warmup: (f64, f64),
) -> String {
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="900" height="760" font-family="sans-serif">"#
    );
    let _ = writeln!(
        svg,
        r##"<rect width="900" height="760" fill="white"/><text x="20" y="26" font-size="17">{}</text>"##,
        esc(title)
    );
    let lat_max = latency
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(1.0, f64::max);
    let lat_min = latency
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(lat_max, f64::min);
    let xmax = latency
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .fold(2.0, f64::max)
        .ceil();
    let lat = Panel {
        x0: 80.0,
        y0: 70.0,
        w: 780.0,
        h: 280.0,
        xr: (0.0, xmax),
        yr: (
            10f64.powf(lat_min.log10().floor()),
            10f64.powf(lat_max.log10().ceil()).max(10.0),
        ),
        ylog: true,
    };
    let names = [
        "p0",
        "p90",
        "p99",
        "p99.9",
        "p99.99",
        "p99.999",
        "p99.9999",
        "p99.99999",
    ];
    let xl: Vec<(f64, String)> = (0..=xmax as usize)
        .map(|i| (i as f64, names.get(i).unwrap_or(&"").to_string()))
        .collect();
    draw(
        &mut svg,
        &lat,
        "Latency by percentile",
        &xl,
        "microseconds",
        latency,
        None,
    );
    let tmax = throughput
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .fold(1.0, f64::max);
    let ymax = throughput
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(1.0, f64::max)
        * 1.1;
    let thr = Panel {
        x0: 80.0,
        y0: 430.0,
        w: 780.0,
        h: 280.0,
        xr: (0.0, tmax),
        yr: (0.0, ymax),
        ylog: false,
    };
    let step = ((tmax / 10.0).ceil()).max(1.0);
    let tl: Vec<(f64, String)> = (0..=(tmax / step) as usize)
        .map(|i| (i as f64 * step, format!("{}s", i as f64 * step)))
        .collect();
    draw(
        &mut svg,
        &thr,
        "Throughput over time",
        &tl,
        "MB/s",
        throughput,
        Some(warmup),
    );
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curve_ends_at_the_max_and_svg_is_well_formed() {
        let mut h = crate::load::stats::latency_histogram();
        for i in 1..=10_000u64 {
            h.record(i).unwrap();
        }
        let c = percentile_curve(&h);
        assert_eq!(c.last().unwrap().1, h.max() as f64);
        assert!(c.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1));
        let svg = render(
            "t <&>",
            &[Series {
                name: "produce",
                color: "#1f77b4",
                points: c,
            }],
            &[Series {
                name: "produced",
                color: "#d62728",
                points: vec![(0.0, 1.0), (5.0, 100.0)],
            }],
            (0.0, 2.0),
        );
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("t &lt;&amp;&gt;") && svg.contains("<polyline"));
    }
}
