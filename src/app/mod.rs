//! The field app UI (Dioxus 0.7): the [`App`] component, the one [`Route`] enum, and the
//! services every screen reaches through context (the device store, location, camera, sync).
//!
//! The same `App` runs in the desktop window, on phones, in the liveview browser harness and
//! in view tests; only the [`Services`] handed to it differ.

use std::sync::Arc;

use std::rc::Rc;

use dioxus::history::MemoryHistory;
use dioxus::prelude::*;
use dioxus::router::components::HistoryProvider;
use uuid::Uuid;

use crate::domain::codes::Lang;

pub mod autosync;
pub mod components;
pub mod conflicts;
pub mod context;
pub mod drafts;
#[cfg(feature = "browser")]
pub mod harness;
pub mod i18n;
pub mod lock;
#[cfg(feature = "mobile")]
pub mod phone;
pub mod photo;
pub mod platform;
pub mod recorder;
pub mod sync_port;
pub mod views;

use components::Shell;
use views::*;

pub use context::{
    Services, Session, StoreHandle, bump, local_stamp, local_time, use_services, use_session,
    use_store,
};

/// The app's stylesheet. Inlined rather than served through `asset!`, because `asset!` needs
/// the Dioxus CLI as the linker and this project builds with plain `cargo`.
pub const CSS: &str = include_str!("../../assets/app.css");

/// Every screen behind the PIN, under one layout with the bottom tab bar.
#[derive(Clone, Routable, Debug, PartialEq)]
#[rustfmt::skip]
pub enum Route {
    #[layout(Shell)]
        #[route("/")]
        Today {},
        #[route("/households")]
        Households {},
        #[route("/households/:id")]
        HouseholdPage { id: Uuid },
        #[route("/report/:kind")]
        Report { kind: String },
        #[route("/households/:id/report/:kind")]
        HouseholdReport { id: Uuid, kind: String },
        #[route("/patrol")]
        PatrolPage {},
        #[route("/map")]
        MapPage {},
        #[route("/records")]
        Records {},
        #[route("/records/:id")]
        RecordPage { id: Uuid },
        #[route("/sync")]
        SyncPage {},
        #[route("/settings")]
        Settings {},
        #[route("/feedback")]
        Feedback {},
        #[route("/points")]
        PointsPage {},
        #[route("/tasks/:id")]
        TaskPage { id: Uuid },
}

/// The app: the lock/enrol gate, then the router.
#[component]
pub fn App(services: Services) -> Element {
    let initial_store = services.store.clone();
    let lang0 = services.lang;
    let start = services.start.clone();
    use_context_provider(|| services.clone());
    let lang = use_context_provider(|| Signal::new(lang0));
    let store = use_signal(|| initial_store);
    let rev = use_signal(|| 0u64);
    let patrol = use_signal(|| None);
    let track = use_signal(|| 0u64);
    let located = use_signal(|| None);
    let session = use_context_provider(|| Session {
        store,
        rev,
        patrol,
        track,
        located,
    });
    autosync::use_autosync_provider(&services, session, services.autosync);
    let mut last_active = use_signal(|| services.now());
    lock::use_auto_lock(&services, session, last_active);
    let touch = {
        let services = services.clone();
        move || last_active.set(services.now())
    };
    let (mut t1, mut t2, mut t3) = (touch.clone(), touch.clone(), touch);
    let unlocked = store.read().is_some();
    let zh = *lang.read() == Lang::Zh;
    rsx! {
        document::Title { "网格通 gridwalk" }
        document::Meta { name: "viewport", content: "width=device-width, initial-scale=1" }
        style { {CSS} }
        div { class: "app", lang: if zh { "zh-CN" } else { "en" },
            onmousedown: move |_| t1(), oninput: move |_| t2(), onkeydown: move |_| t3(),
            if unlocked {
                if let Some(start) = start {
                    HistoryProvider {
                        history: move |_| Rc::new(MemoryHistory::with_initial_path(start.clone())) as Rc<dyn History>,
                        Router::<Route> {}
                    }
                } else {
                    Router::<Route> {}
                }
            } else {
                views::unlock::Gate {}
            }
        }
    }
}

/// Makes the services of one app instance (a window, or one browser tab of the harness).
pub type MakeServices = Arc<dyn Fn() -> Services + Send + Sync>;

/// The services of the desktop window or the phone app (their launchers take a plain function
/// as the root, so the services wait here).
#[cfg(any(feature = "desktop", feature = "mobile"))]
static WINDOW_SERVICES: std::sync::OnceLock<MakeServices> = std::sync::OnceLock::new();

#[cfg(any(feature = "desktop", feature = "mobile"))]
#[component]
fn WindowRoot() -> Element {
    let services = use_hook(|| WINDOW_SERVICES.get().map(|make| make()));
    match services {
        Some(services) => rsx! { App { services } },
        None => rsx! { "no services" },
    }
}

/// Opens the phone-sized desktop window (blocks until it is closed).
#[cfg(feature = "desktop")]
pub fn launch_desktop(make: MakeServices) {
    use dioxus::desktop::{Config, LogicalSize, WindowBuilder};
    let _ = WINDOW_SERVICES.set(make);
    let window = WindowBuilder::new()
        .with_title("网格通 gridwalk")
        .with_inner_size(LogicalSize::new(400.0, 820.0));
    let cfg = Config::new().with_window(window).with_menu(None);
    dioxus::LaunchBuilder::desktop()
        .with_cfg(cfg)
        .launch(WindowRoot);
}

/// Starts the app through Dioxus's mobile launcher (a full-screen webview on Android and iOS;
/// a window elsewhere). Blocks while the app runs. On a phone, [`phone::launch`] calls it with
/// the phone's services.
#[cfg(feature = "mobile")]
pub fn launch_mobile(make: MakeServices) {
    let _ = WINDOW_SERVICES.set(make);
    dioxus::LaunchBuilder::mobile().launch(WindowRoot);
}
