//! Server-rendered SVG: bar charts, a time series and map projection. No scripts, no external
//! tiles: every chart is readable as-is and prints.

use geo::{BoundingRect, Coord, Polygon, Rect};
use maud::{Markup, html};

/// Palette: calm blue for counts, green for done, amber for due soon, red for overdue.
pub const BLUE: &str = "#2f6fb3";
pub const GREEN: &str = "#3a8f5c";
pub const AMBER: &str = "#d08a1e";
pub const RED: &str = "#c2412d";
pub const GREY: &str = "#b8c0c8";

/// Colours for up to nine series (one per event domain).
pub const PALETTE: &[&str] = &[
    "#2f6fb3", "#8e5bb5", "#3a8f5c", "#c2412d", "#d08a1e", "#b83280", "#2b8a99", "#7a8b1e",
    "#6b7785",
];

fn fmt_num(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round() as i64)
    } else {
        format!("{v:.1}")
    }
}

/// Horizontal bars: one row per item, stacked segments per series, total at the end.
/// `rows` are (label, values per series); `series` are (name, colour).
pub fn stacked_bars(rows: &[(String, Vec<f64>)], series: &[(&str, &str)]) -> Markup {
    let label_w = 190.0;
    let bar_w = 420.0;
    let row_h = 24.0;
    let top = 26.0;
    let max = rows
        .iter()
        .map(|(_, v)| v.iter().sum::<f64>())
        .fold(0.0_f64, f64::max)
        .max(1.0);
    let height = top + row_h * rows.len() as f64 + 8.0;
    let width = label_w + bar_w + 70.0;
    html! {
        svg.chart xmlns="http://www.w3.org/2000/svg" viewBox={"0 0 " (width) " " (height)} width=(width) height=(height) role="img" {
            // legend
            @for (i, (name, colour)) in series.iter().enumerate() {
                rect x=(label_w + i as f64 * 110.0) y="4" width="12" height="12" fill=(colour) {}
                text x=(label_w + i as f64 * 110.0 + 16.0) y="14" font-size="12" { (name) }
            }
            @for (i, (label, values)) in rows.iter().enumerate() {
                @let y = top + i as f64 * row_h;
                @let segs = segments(values, max, bar_w, label_w);
                @let end = segs.last().map(|s| s.0 + s.1).unwrap_or(label_w);
                text x=(label_w - 6.0) y=(y + 15.0) font-size="12" text-anchor="end" { (label) }
                @for (j, (x, w, v)) in segs.iter().enumerate() {
                    @if *w > 0.0 {
                        rect x=(x) y=(y + 3.0) width=(w) height=(row_h - 8.0) fill=(series.get(j).map(|s| s.1).unwrap_or(GREY)) {
                            title { (label) " · " (series.get(j).map(|s| s.0).unwrap_or("")) ": " (fmt_num(*v)) }
                        }
                    }
                }
                text x=(end + 6.0) y=(y + 15.0) font-size="12" fill="#333" { (fmt_num(values.iter().sum())) }
            }
        }
    }
}

/// (x, width, value) of each stacked segment.
fn segments(values: &[f64], max: f64, bar_w: f64, x0: f64) -> Vec<(f64, f64, f64)> {
    let mut x = x0;
    values
        .iter()
        .map(|v| {
            let w = v / max * bar_w;
            let s = (x, w, *v);
            x += w;
            s
        })
        .collect()
}

/// Horizontal percentage bars (0–100), coloured by thresholds, with a caption per row.
pub fn percent_bars(rows: &[(String, f64, String)]) -> Markup {
    let label_w = 170.0;
    let bar_w = 300.0;
    let row_h = 22.0;
    let height = row_h * rows.len() as f64 + 6.0;
    let width = label_w + bar_w + 150.0;
    html! {
        svg.chart xmlns="http://www.w3.org/2000/svg" viewBox={"0 0 " (width) " " (height)} width=(width) height=(height) role="img" {
            @for (i, (label, pct, caption)) in rows.iter().enumerate() {
                @let y = i as f64 * row_h;
                @let colour = if *pct >= 80.0 { GREEN } else if *pct >= 50.0 { AMBER } else { RED };
                text x=(label_w - 6.0) y=(y + 15.0) font-size="12" text-anchor="end" { (label) }
                rect x=(label_w) y=(y + 3.0) width=(bar_w) height=(row_h - 7.0) fill="#eef1f4" {}
                rect x=(label_w) y=(y + 3.0) width=(pct.clamp(0.0, 100.0) / 100.0 * bar_w) height=(row_h - 7.0) fill=(colour) {
                    title { (label) ": " (format!("{pct:.0}%")) }
                }
                text x=(label_w + bar_w + 6.0) y=(y + 15.0) font-size="12" { (format!("{pct:.0}%")) " " (caption) }
            }
        }
    }
}

/// Stacked columns over time (e.g. records per week by domain), with a legend and each
/// column's total on top.
pub fn stacked_columns(points: &[(String, Vec<f64>)], series: &[(&str, &str)]) -> Markup {
    let col_w = 34.0;
    let h = 140.0;
    let top = 18.0 + 16.0 * series.len().div_ceil(5) as f64;
    let bottom = 34.0;
    let max = points
        .iter()
        .map(|p| p.1.iter().sum::<f64>())
        .fold(0.0_f64, f64::max)
        .max(1.0);
    let width = (20.0 + col_w * points.len() as f64).max(5.0 * 90.0);
    let height = top + h + bottom;
    html! {
        svg.chart xmlns="http://www.w3.org/2000/svg" viewBox={"0 0 " (width) " " (height)} width=(width) height=(height) role="img" {
            @for (i, (name, colour)) in series.iter().enumerate() {
                @let (lx, ly) = (10.0 + (i % 5) as f64 * 90.0, 4.0 + (i / 5) as f64 * 16.0);
                rect x=(lx) y=(ly) width="10" height="10" fill=(colour) {}
                text x=(lx + 14.0) y=(ly + 9.0) font-size="11" { (name) }
            }
            line x1="10" x2=(width - 4.0) y1=(top + h) y2=(top + h) stroke="#999" {}
            @for (i, (label, values)) in points.iter().enumerate() {
                @let x = 14.0 + i as f64 * col_w;
                @let total: f64 = values.iter().sum();
                @let segs = segments(values, max, h, 0.0);
                @for (j, (y0, sh, v)) in segs.iter().enumerate() {
                    @if *sh > 0.0 {
                        rect x=(x) y=(top + h - y0 - sh) width=(col_w - 8.0) height=(sh) fill=(series.get(j).map(|s| s.1).unwrap_or(GREY)) {
                            title { (label) " · " (series.get(j).map(|s| s.0).unwrap_or("")) ": " (fmt_num(*v)) }
                        }
                    }
                }
                text x=(x + (col_w - 8.0) / 2.0) y=(top + h - total / max * h - 4.0) font-size="10" text-anchor="middle" { (fmt_num(total)) }
                text x=(x + (col_w - 8.0) / 2.0) y=(top + h + 14.0) font-size="9" text-anchor="middle" { (label) }
            }
        }
    }
}

/// Maps WGS84 lon/lat into an SVG box (equirectangular, scaled by the latitude's cosine so
/// shapes are not stretched at Chinese latitudes).
#[derive(Debug, Clone, Copy)]
pub struct Projection {
    min: Coord<f64>,
    kx: f64,
    scale: f64,
    width: f64,
    height: f64,
    pad: f64,
}

impl Projection {
    /// Fits `bounds` into `width` × (computed) height.
    pub fn fit(bounds: Rect<f64>, width: f64, pad: f64) -> Projection {
        Projection::fit_in(bounds, width, f64::INFINITY, pad)
    }

    /// Fits `bounds` into at most `max_w` × `max_h`, keeping the shape.
    pub fn fit_in(bounds: Rect<f64>, max_w: f64, max_h: f64, pad: f64) -> Projection {
        let kx = bounds.center().y.to_radians().cos().max(0.1);
        let w = (bounds.width() * kx).max(1e-9);
        let h = bounds.height().max(1e-9);
        let scale = ((max_w - 2.0 * pad) / w).min((max_h - 2.0 * pad) / h);
        Projection {
            min: bounds.min(),
            kx,
            scale,
            width: w * scale + 2.0 * pad,
            height: h * scale + 2.0 * pad,
            pad,
        }
    }

    /// Fits every polygon.
    pub fn fit_all<'a>(
        polys: impl IntoIterator<Item = &'a Polygon<f64>>,
        width: f64,
        pad: f64,
    ) -> Option<Projection> {
        Projection::fit_all_in(polys, width, f64::INFINITY, pad)
    }

    /// Fits every polygon into at most `max_w` × `max_h`.
    pub fn fit_all_in<'a>(
        polys: impl IntoIterator<Item = &'a Polygon<f64>>,
        max_w: f64,
        max_h: f64,
        pad: f64,
    ) -> Option<Projection> {
        let mut b: Option<Rect<f64>> = None;
        for p in polys {
            if let Some(r) = p.bounding_rect() {
                b = Some(match b {
                    None => r,
                    Some(a) => Rect::new(
                        Coord {
                            x: a.min().x.min(r.min().x),
                            y: a.min().y.min(r.min().y),
                        },
                        Coord {
                            x: a.max().x.max(r.max().x),
                            y: a.max().y.max(r.max().y),
                        },
                    ),
                });
            }
        }
        b.map(|b| Projection::fit_in(b, max_w, max_h, pad))
    }

    pub fn width(&self) -> f64 {
        self.width
    }

    pub fn height(&self) -> f64 {
        self.height
    }

    pub fn xy(&self, lon: f64, lat: f64) -> (f64, f64) {
        let x = self.pad + (lon - self.min.x) * self.kx * self.scale;
        let y = self.height - self.pad - (lat - self.min.y) * self.scale;
        (x, y)
    }

    /// An SVG path for a polygon's outer ring.
    pub fn path(&self, p: &Polygon<f64>) -> String {
        let mut d = String::new();
        for (i, c) in p.exterior().coords().enumerate() {
            let (x, y) = self.xy(c.x, c.y);
            d.push_str(&format!("{}{x:.1},{y:.1}", if i == 0 { "M" } else { "L" }));
        }
        d.push('Z');
        d
    }
}

/// A colour from green (good) to red (bad) for a share 0..=1 of "good".
pub fn ramp(good: f64) -> String {
    let g = good.clamp(0.0, 1.0);
    // red (194,65,45) → amber (208,138,30) → green (58,143,92)
    let (a, b, t) = if g < 0.5 {
        ((194.0, 65.0, 45.0), (208.0, 138.0, 30.0), g * 2.0)
    } else {
        ((208.0, 138.0, 30.0), (58.0, 143.0, 92.0), (g - 0.5) * 2.0)
    };
    let mix = |x: f64, y: f64| (x + (y - x) * t).round() as u8;
    format!(
        "#{:02x}{:02x}{:02x}",
        mix(a.0, b.0),
        mix(a.1, b.1),
        mix(a.2, b.2)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::polygon;

    #[test]
    fn projection_keeps_north_up_and_fits_the_box() {
        let p = polygon![(x: 116.0, y: 39.0), (x: 116.1, y: 39.0), (x: 116.1, y: 39.1), (x: 116.0, y: 39.1)];
        let pr = Projection::fit(p.bounding_rect().unwrap(), 400.0, 10.0);
        let (x0, y0) = pr.xy(116.0, 39.0);
        let (x1, y1) = pr.xy(116.1, 39.1);
        assert!((x0 - 10.0).abs() < 1e-6 && (x1 - 390.0).abs() < 1e-6);
        assert!(y1 < y0, "north is up");
        assert!((pr.height() - (y0 - y1) - 20.0).abs() < 1e-6);
    }

    #[test]
    fn ramp_runs_red_to_green() {
        assert_eq!(ramp(0.0), "#c2412d");
        assert_eq!(ramp(1.0), "#3a8f5c");
        assert_eq!(ramp(0.5), "#d08a1e");
    }

    #[test]
    fn the_map_legend_in_the_stylesheet_has_the_ramp_colours() {
        // The legend's swatches are classes (no inline style: the pages' policy forbids it).
        let css = include_str!("../../../assets/dashboard.css");
        for (class, good) in [("good", 1.0), ("half", 0.5), ("bad", 0.0)] {
            let rule = format!(".sw.{class} {{ background: {}; }}", ramp(good));
            assert!(css.contains(&rule), "{rule}");
        }
    }

    #[test]
    fn stacked_columns_show_totals_and_a_legend() {
        let m = stacked_columns(
            &[
                ("11-23".into(), vec![2.0, 3.0]),
                ("11-30".into(), vec![0.0, 1.0]),
            ],
            &[("安全隐患", BLUE), ("社情民意", GREEN)],
        )
        .into_string();
        assert!(m.contains(">5</text>") && m.contains(">1</text>"), "{m}");
        assert!(m.contains("安全隐患") && m.contains("11-30"));
        assert_eq!(
            m.matches("<rect").count(),
            2 + 3,
            "legend and non-empty segments"
        );
    }

    #[test]
    fn bars_escape_their_labels() {
        let m = stacked_bars(
            &[("<b>".into(), vec![1.0, 2.0])],
            &[("a", BLUE), ("b", GREEN)],
        );
        let s = m.into_string();
        assert!(s.contains("&lt;b&gt;") && !s.contains("<b>"));
        assert!(s.contains(">3</text>"), "total shown: {s}");
    }
}
