//! The patrol recorder: mounted once in the layout, it watches the location source while a
//! patrol runs, whichever screen the worker is on. The source pushes its fixes (a phone's
//! sensor, the simulated walk's timer thread); the recorder keeps those the track filter
//! admits (accuracy within [`POOR_ACCURACY_M`](crate::app::platform::POOR_ACCURACY_M), a step
//! of at least [`MIN_STEP_M`](crate::app::platform::MIN_STEP_M), no jump faster than
//! [`MAX_SPEED_MPS`](crate::app::platform::MAX_SPEED_MPS)) and says what the last reading
//! was, for the Patrol screen. Below the views (the layout and the Patrol screen both use it).

use std::time::Duration;

use dioxus::prelude::*;
use uuid::Uuid;

use crate::app::context::{Services, StoreHandle, use_services, use_session, use_store};
use crate::app::platform::{Admit, Fix, Locating, POOR_ACCURACY_M, TrackFilter};
use crate::domain::codes::Domain;
use crate::domain::geo::{GeoPoint, TrackPoint};
use crate::domain::lifecycle::Status;
use crate::domain::model::{PatrolPoints, new_id};
use crate::store::StoreError;
use crate::store::records::RecordQuery;

/// Appends one fix to the running patrol (stamped with the time the source took it, never
/// later than now); returns the patrol's distance so far.
pub fn append_fix(
    store: &StoreHandle,
    services: &Services,
    patrol: Uuid,
    fix: &Fix,
) -> Result<f64, StoreError> {
    let now = services.now();
    store.write(|s| {
        s.append_patrol_points(
            &PatrolPoints {
                id: new_id(),
                patrol_id: patrol,
                points: vec![TrackPoint {
                    at: fix.at.min(now),
                    lon: fix.point.lon,
                    lat: fix.point.lat,
                    accuracy_m: fix.point.accuracy_m,
                }],
            },
            now,
        )
    })
}

/// Appends the source's latest fix to the running patrol (its first point when it starts,
/// its last when it ends), unless there is none or it is poor. Whether it was appended.
pub fn record_current(store: &StoreHandle, services: &Services, patrol: Uuid) -> bool {
    match services.location.fix() {
        Ok(fix) if !fix.is_poor(POOR_ACCURACY_M) => {
            append_fix(store, services, patrol, &fix).is_ok()
        }
        _ => false,
    }
}

/// The last point a patrol's track holds (where the filter picks up after a restart).
fn last_point(store: &StoreHandle, patrol: Uuid) -> Option<Fix> {
    let track = store.read(|s| s.patrol_track(patrol)).ok()?;
    track.last().map(|p| {
        Fix::new(
            GeoPoint {
                lon: p.lon,
                lat: p.lat,
                accuracy_m: p.accuracy_m,
            },
            p.at,
        )
    })
}

/// Finds a patrol left running (app closed mid-patrol) and keeps recording it.
pub fn running_patrol(store: &StoreHandle) -> Option<Uuid> {
    store
        .read(|s| {
            let me = s.worker().to_owned();
            Ok(s.records(&RecordQuery {
                domain: Some(Domain::Patrol),
                statuses: vec![Status::Recording],
                ..Default::default()
            })?
            .into_iter()
            .find(|r| r.author == me)
            .map(|r| r.id))
        })
        .ok()
        .flatten()
}

/// Watches the location source while a patrol runs and records what the track filter admits.
/// Mounted once, in the layout; a patrol started or ended restarts the watch (the old one's
/// receiver is dropped, which ends it at the source).
#[component]
pub fn PatrolRecorder() -> Element {
    let services = use_services();
    let mut session = use_session();
    let store = use_store();
    let s0 = store.clone();
    use_hook(move || {
        if session.patrol.peek().is_none()
            && let Some(id) = running_patrol(&s0)
        {
            session.patrol.set(Some(id));
        }
    });
    let _watch = use_resource(move || {
        let running = (session.patrol)();
        let services = services.clone();
        let store = store.clone();
        async move {
            let Some(id) = running else {
                session.located.set(None);
                // Nobody watches now: a phone's source may stop its sensor.
                services.location.rest();
                return;
            };
            let mut filter = TrackFilter::new(last_point(&store, id));
            let every = Duration::from_millis(services.fix_interval_ms.max(50));
            let mut fixes = services.location.watch(every);
            while let Some(reading) = fixes.recv().await {
                if let Ok(fix) = &reading
                    && filter.admit(fix) == Admit::Keep
                    && append_fix(&store, &services, id, fix).is_ok()
                {
                    let next = *session.track.peek() + 1;
                    session.track.set(next);
                }
                session.located.set(Some(Locating::of(reading)));
            }
        }
    });
    rsx! {}
}
