//! The patrol recorder: mounted once in the layout, it takes a fix every `fix_interval_ms`
//! while a patrol runs, whichever screen the worker is on. Below the views (the layout and
//! the Patrol screen both use it).

use std::time::Duration;

use dioxus::prelude::*;
use uuid::Uuid;

use crate::app::context::{Services, StoreHandle, use_services, use_session, use_store};
use crate::domain::codes::Domain;
use crate::domain::geo::TrackPoint;
use crate::domain::labels::Explain;
use crate::domain::lifecycle::Status;
use crate::domain::model::{PatrolPoints, new_id};
use crate::store::StoreError;
use crate::store::records::RecordQuery;

/// Appends one fix to the running patrol; returns the patrol's distance so far.
pub fn record_fix(
    store: &StoreHandle,
    services: &Services,
    patrol: Uuid,
) -> Result<f64, StoreError> {
    let fix = services
        .location
        .fix()
        .map_err(|e| StoreError::Conflict(e.explain(store.1)))?;
    let now = services.now();
    store.write(|s| {
        s.append_patrol_points(
            &PatrolPoints {
                id: new_id(),
                patrol_id: patrol,
                points: vec![TrackPoint {
                    at: now,
                    lon: fix.lon,
                    lat: fix.lat,
                    accuracy_m: fix.accuracy_m,
                }],
            },
            now,
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

/// Takes a fix every `fix_interval_ms` while a patrol runs. Mounted once, in the layout.
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
    use_future(move || {
        let services = services.clone();
        let store = store.clone();
        async move {
            loop {
                tokio::time::sleep(Duration::from_millis(services.fix_interval_ms.max(50))).await;
                let running = *session.patrol.peek();
                if let Some(id) = running {
                    // A failed fix is skipped: the next one may succeed.
                    if record_fix(&store, &services, id).is_ok() {
                        let next = *session.track.peek() + 1;
                        session.track.set(next);
                    }
                }
            }
        }
    });
    rsx! {}
}
