//! The map (网格地图): the grids in scope drawn from their boundaries, coloured by visit
//! coverage or by open hazards, with open hazards as points that open their record. Drawn as
//! SVG on the server from the stored polygons: no tile server, works on a closed network.

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use chrono::{Duration, Utc};
use geo::Centroid;
use maud::html;
use serde::Deserialize;

use super::charts::{self, Projection};
use super::load::{self, RecordSql};
use super::{Clerk, PageError, nonempty, page};
use crate::domain::codes::{Coded, Domain, Urgency};
use crate::domain::lifecycle::lifecycle;
use crate::server::AppState;

/// The most hazard points drawn on one map.
const MAX_POINTS: usize = 2000;

pub fn routes() -> Router<AppState> {
    Router::new().route("/map", get(map_page))
}

#[derive(Debug, Default, Deserialize)]
struct MapQuery {
    /// `coverage` (default) or `hazards`.
    #[serde(default)]
    color: Option<String>,
    #[serde(default)]
    village: Option<String>,
}

async fn map_page(
    State(s): State<AppState>,
    clerk: Clerk,
    Query(q): Query<MapQuery>,
) -> Result<Response, PageError> {
    let c2 = clerk.clone();
    let village = nonempty(&q.village).map(str::to_owned);
    let v2 = village.clone();
    let (grids, households, visits, hazards, all_grids) = s
        .read(move |db| {
            let all = load::grids(db, &c2.user)?;
            let user = load::narrowed(&c2.user, v2.as_deref());
            let grids: BTreeMap<_, _> = all
                .iter()
                .filter(|(c, _)| v2.as_deref().is_none_or(|v| c.starts_with(v)))
                .map(|(c, g)| (c.clone(), g.clone()))
                .collect();
            let households = load::households_per_grid(db, &user)?;
            let visits = load::visits_since(db, &user, super::today() - Duration::days(30))?;
            let hazards = load::records(
                db,
                &user,
                |first| {
                    let mut s = RecordSql::default();
                    s.add("kind", "=", Domain::Hazard.code(), first);
                    s.add_open(first);
                    s
                },
                20_000,
                load::Want::Full,
            )?;
            Ok((grids, households, visits, hazards, all))
        })
        .await?;
    let by_hazards = nonempty(&q.color) == Some("hazards");
    let open: Vec<&load::RecordRow> = hazards
        .iter()
        .filter(|h| lifecycle(Domain::Hazard).is_open(h.status) && !h.handled())
        .filter(|h| grids.contains_key(&h.grid_code))
        .collect();
    let mut open_per_grid: BTreeMap<&str, usize> = BTreeMap::new();
    for h in &open {
        *open_per_grid.entry(h.grid_code.as_str()).or_default() += 1;
    }
    let visited = load::visited_per_grid(&visits, super::today() - Duration::days(30));
    let max_open = open_per_grid.values().copied().max().unwrap_or(0).max(1);
    // A county-wide map with thousands of points is unreadable and heavy: above the cap only
    // urgent and major hazards are drawn (the grid colours still count every one).
    let all_points = open.len() <= MAX_POINTS;
    let points: Vec<&&load::RecordRow> = open
        .iter()
        .filter(|h| all_points || h.urgency != Urgency::Normal)
        .collect();
    let pr = Projection::fit_all(grids.values().map(|g| &g.boundary), 900.0, 16.0);
    let now = Utc::now();
    let villages = load::villages(&all_grids);
    let content = html! {
        h1 { "网格地图" span.en { " Map" } }
        form.filters method="get" action="/map" {
            label { "着色" select name="color" {
                option value="coverage" selected[!by_hazards] { "走访覆盖率（近30天）" }
                option value="hazards" selected[by_hazards] { "未闭环隐患数" }
            } }
            label { "村/社区" select name="village" {
                option value="" { "全部" }
                @for (code, name) in &villages { option value=(code) selected[village.as_deref() == Some(code.as_str())] { (name) } }
            } }
            button type="submit" { "显示" }
        }
        p.legend {
            @if by_hazards {
                span.sw.good {} " 无隐患 "
                span.sw.half {} " 较多 "
                span.sw.bad {} " 最多 (" (max_open) ") "
            } @else {
                span.sw.good {} " 全部走访 "
                span.sw.half {} " 一半 "
                span.sw.bad {} " 未走访 "
            }
            " · " span.dot.urgent {} " 紧急/重大隐患 "
            @if all_points { span.dot {} " 一般隐患" } @else { "（一般隐患超过 " (MAX_POINTS) " 处，只在网格颜色中计数；选择村/社区查看全部）" }
            " · 共 " strong #open-hazards { (open.len()) } " 处未闭环"
        }
        @if let Some(pr) = pr {
            svg.map xmlns="http://www.w3.org/2000/svg" viewBox={"0 0 900 " (pr.height())} role="img" {
                @for g in grids.values() {
                    @let hh = households.get(&g.code).copied().unwrap_or(0);
                    @let seen = visited.get(g.code.as_str()).copied().unwrap_or(0);
                    @let n = open_per_grid.get(g.code.as_str()).copied().unwrap_or(0);
                    @let good = if by_hazards { 1.0 - n as f64 / max_open as f64 } else if hh == 0 { 0.0 } else { seen as f64 / hh as f64 };
                    a href={"/queue?grid=" (g.code)} {
                        path.grid d=(pr.path(&g.boundary)) fill=(charts::ramp(good)) fill-opacity="0.55" stroke="#34495e" stroke-width="0.8" data-code=(g.code) {
                            title { (g.village_name) " " (g.name) " (" (g.code) ")：" (seen) "/" (hh) " 户近30天已走访，" (n) " 处未闭环隐患" }
                        }
                    }
                    @if grids.len() <= 20 {
                        @if let Some(c) = g.boundary.centroid() {
                            @let (x, y) = pr.xy(c.x(), c.y());
                            text.gridlabel x=(x) y=(y) text-anchor="middle" font-size="10" { (g.name) }
                        }
                    }
                }
                @for (name, x, y) in village_labels(&grids, &pr) {
                    text.villagelabel x=(x) y=(y) text-anchor="middle" font-size="15" { (name) }
                }
                @for h in &points {
                    @if let Some(p) = &h.location {
                        @let (x, y) = pr.xy(p.lon, p.lat);
                        @let urgent = h.urgency != Urgency::Normal;
                        a href={"/records/" (h.id)} {
                            circle.hazard cx=(x) cy=(y) r=(if urgent { 6 } else { 4 }) fill=(if urgent { charts::RED } else { charts::AMBER }) stroke="#fff" stroke-width="1.5" data-id=(h.id) {
                                title { "隐患：" (h.category_label()) " · " (h.status.zh()) " · " (h.summary) }
                            }
                        }
                    }
                }
            }
        } @else {
            p.muted { "范围内没有网格边界数据，请在「数据」页导入网格边界 GeoJSON。" }
        }
        p.muted { "绘制于 " (super::local(now)) "；点击网格查看该网格的事项，点击圆点打开隐患。" }
    };
    Ok(page("网格地图", &clerk, "map", content))
}

/// A label per village at the mean of its grids' centroids (when grids are too many to name).
fn village_labels(
    grids: &BTreeMap<String, load::GridInfo>,
    pr: &Projection,
) -> Vec<(String, f64, f64)> {
    if grids.len() <= 20 {
        return vec![];
    }
    let mut acc: BTreeMap<&str, (&str, f64, f64, f64)> = BTreeMap::new();
    for g in grids.values() {
        if let Some(c) = g.boundary.centroid() {
            let e = acc.entry(g.village_code.as_str()).or_insert((
                g.village_name.as_str(),
                0.0,
                0.0,
                0.0,
            ));
            e.1 += c.x();
            e.2 += c.y();
            e.3 += 1.0;
        }
    }
    acc.into_values()
        .map(|(name, x, y, n)| {
            let (px, py) = pr.xy(x / n, y / n);
            (name.to_owned(), px, py)
        })
        .collect()
}
