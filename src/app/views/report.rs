//! Report: hazard (category, severity, description, photos, location with its accuracy and
//! the grid found by point-in-polygon, a warning outside my grids), 社情民意 (with the optional
//! deliberation track), dispute (category, parties) and emergency (category, level, initial
//! report). Every form saves its draft as the worker types; validation messages appear beside
//! their fields. Follow-ups (mediation sessions, satisfaction, 续报/终报) live on the record.

use dioxus::prelude::*;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::app::components::{
    Counter, ErrorNote, Field, FieldCheck, code_options, err, err_prefix, fix_quality, parse_code,
};
use crate::app::context::{StoreHandle, bump, use_services, use_store};
use crate::app::i18n::{t, use_lang};
use crate::app::photo;
use crate::app::platform::{Locating, PlatformError};
use crate::app::{Route, drafts};
use crate::domain::codes::{
    Coded, DeliberationStage, DisputeCategory, Domain, EmergencyCategory, EmergencyLevel,
    HazardCategory, Lang, OpinionCategory, PartyRole, ReportStage, Severity, Urgency,
};
use crate::domain::geo::GeoPoint;
use crate::domain::labels::Explain;
use crate::domain::model::{
    Common, Dispute, Emergency, EmergencyReport, EventRecord, Hazard, Opinion, Party, TEXT_MAX,
    new_id,
};
use crate::domain::spatial::Location;
use crate::domain::validate::{Problem, ValidationErrors};
use crate::store::drafts::StagedPhoto;
use crate::store::{Store, StoreError};

/// The report kinds, in the kind chooser's order: (route kind, 中文, English). The route kind
/// is also the form's draft name and its chooser link's id (`kind-…`).
const KINDS: &[(&str, &str, &str)] = &[
    ("hazard", "安全隐患", "Hazard"),
    ("opinion", "社情民意", "Opinion"),
    ("dispute", "矛盾纠纷", "Dispute"),
    ("emergency", "突发事件", "Emergency"),
    ("special-pop", "特殊人群服务", "Special population"),
    ("publicity", "政策宣传", "Publicity"),
    ("livelihood", "民生服务", "Livelihood"),
    ("other", "其他", "Other"),
];

#[component]
pub fn Report(kind: String) -> Element {
    let l = *use_lang().read();
    // Started from a household's page: every kind stays that household's report.
    let for_household = try_consume_context::<ReportFor>().map(|r| r.0);
    let route = move |k: &str| match for_household {
        Some(id) => Route::HouseholdReport {
            id,
            kind: k.to_string(),
        },
        None => Route::Report {
            kind: k.to_string(),
        },
    };
    rsx! {
        section { class: "report",
            h1 { {t(l, "上报", "Report")} }
            nav { class: "segmented kinds",
                for (k, zh, en) in KINDS.iter().copied() {
                    Link { class: if kind == k { "seg active" } else { "seg" }, id: "kind-{k}", to: route(k), {t(l, zh, en)} }
                }
            }
            match kind.as_str() {
                "hazard" => rsx! { HazardForm {} },
                "opinion" => rsx! { OpinionForm {} },
                "dispute" => rsx! { DisputeForm {} },
                "emergency" => rsx! { EmergencyForm {} },
                "special-pop" => rsx! { super::duty_forms::SpecialPopForm {} },
                "publicity" => rsx! { super::duty_forms::PublicityForm {} },
                "livelihood" => rsx! { super::duty_forms::LivelihoodForm {} },
                "other" => rsx! { super::duty_forms::OtherForm {} },
                _ => rsx! { ErrorNote { text: format!("unknown report type {kind}") } },
            }
        }
    }
}

/// A report form's draft: what the worker has typed so far, saved on every change. Every
/// draft carries the chosen 紧急程度; `floor` is the lowest the draft's own facts allow.
pub(super) trait FormDraft:
    Serialize + for<'de> Deserialize<'de> + Default + Clone + 'static
{
    /// The chosen urgency's code (blank: the floor).
    fn urgency(&self) -> &str;
    fn set_urgency(&mut self, code: String);
    /// What the record's own facts make its urgency at least.
    fn floor(&self) -> Urgency {
        Urgency::Normal
    }
}

/// What every report form shares: its draft (saved as the worker types), the id its record
/// will have (the same for every tap on one draft), the location, the photos, the field
/// errors, and the one submit that files it all.
pub(super) struct Kit<D: 'static> {
    pub(super) form: &'static str,
    pub(super) draft: Signal<D>,
    id: Uuid,
    place: Signal<Place>,
    photos: Signal<Vec<StagedPhoto>>,
    pub(super) errors: Signal<Option<ValidationErrors>>,
    general: Signal<Option<String>>,
    saving: Signal<bool>,
}

impl<D> Clone for Kit<D> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<D> Copy for Kit<D> {}

/// The kit of the form whose draft is named `form`: its draft loaded once, its record's id,
/// the location fixed as it opens, the photos kept with the draft.
pub(super) fn use_kit<D: FormDraft>(form: &'static str) -> Kit<D> {
    let services = use_services();
    let store = use_store();
    let s0 = store.clone();
    let draft = use_signal(move || {
        s0.read(|s| drafts::load::<D>(s, form))
            .ok()
            .flatten()
            .unwrap_or_default()
    });
    let id = use_hook(|| {
        store
            .read(|s| s.draft_id(form))
            .unwrap_or_else(|_| new_id())
    });
    let st = store.clone();
    let loc = services.location.clone();
    Kit {
        form,
        draft,
        id,
        place: use_signal(move || Place::Sensed(Locating::of(loc.fix()))),
        photos: use_signal(move || staged(&st, form).unwrap_or_default()),
        errors: use_signal(|| None),
        general: use_signal(|| None),
        saving: use_signal(|| false),
    }
}

impl<D: FormDraft> Kit<D> {
    /// Saves the draft as it stands (every change calls it).
    pub(super) fn save(&self) {
        let session = consume_context::<crate::app::Session>();
        if let Some(store) = session.store.peek().as_ref()
            && let Ok(s) = store.lock()
        {
            let _ = drafts::save(&s, self.form, &*self.draft.peek());
        }
    }

    /// Changes the draft with `f` and saves it.
    pub(super) fn edit(mut self, f: impl FnOnce(&mut D)) {
        f(&mut self.draft.write());
        self.save();
    }

    /// Files the record `build` makes from the draft together with the draft's photos and
    /// whatever `then` adds, in one transaction, then opens it. The record's header is made
    /// here and only here: the draft's id, domain, grid (from the location), author, time,
    /// location, the running patrol and the urgency (the chosen one, never below the draft's
    /// floor). A tap while saving, or a second tap on the same draft, files nothing twice.
    pub(super) fn file<R: EventRecord>(
        self,
        domain: Domain,
        build: impl FnOnce(Common, &D) -> Result<R, StoreError>,
        then: impl FnOnce(
            &rusqlite::Connection,
            &R,
            &str,
            chrono::DateTime<chrono::Utc>,
        ) -> Result<(), StoreError>,
    ) {
        let Kit {
            form,
            draft,
            id,
            place,
            mut errors,
            general,
            mut saving,
            ..
        } = self;
        if *saving.peek() {
            return;
        }
        saving.set(true);
        let services = use_services_now();
        let session = consume_context::<crate::app::Session>();
        let store = StoreHandle(
            session
                .store
                .peek()
                .clone()
                .expect("report forms are behind the lock"),
            *consume_context::<Signal<crate::domain::Lang>>().peek(),
        );
        let now = services.now();
        let dr = draft.peek().clone();
        let p = place.peek().point();
        let patrol = *session.patrol.peek();
        let res = store.write(|s| {
            let (grid, _) = place_grid(s, p.as_ref())?;
            let mut common = Common::new(domain, grid, s.worker(), now);
            common.id = id;
            common.location = p;
            common.patrol_id = patrol;
            common.urgency = chosen_urgency(dr.urgency(), dr.floor());
            common.household_id = try_consume_context::<ReportFor>().map(|r| r.0);
            let rec = build(common, &dr)?;
            let actor = s.worker().to_owned();
            s.file_draft_with(form, &rec, now, |tx| then(tx, &rec, &actor, now))?;
            Ok(id)
        });
        saving.set(false);
        match res {
            Ok(id) => {
                errors.set(None);
                bump(session);
                navigator().push(Route::RecordPage { id });
            }
            Err(e) => submit_error(store.1, e, errors, general),
        }
    }
}

/// How one report form's frame differs from the others'.
pub(super) struct Frame {
    /// The 紧急程度 select's id.
    pub(super) urgency_id: &'static str,
    /// The submit button's id and words.
    pub(super) submit_id: &'static str,
    pub(super) submit: (&'static str, &'static str),
    /// An emergency's button is red.
    pub(super) danger: bool,
    /// What happens after filing, under the button.
    pub(super) after: Option<(&'static str, &'static str)>,
    /// The form's own names of fields whose usual label differs (field, 中文, English), for
    /// the note over the button.
    pub(super) labels: &'static [(&'static str, &'static str, &'static str)],
}

/// The skeleton every report form is built from: the form's own `fields`, then 紧急程度
/// (never below what the draft's facts make it), photos, location with its grid, the link to a
/// running patrol, what is still wrong (a failure that is no field's, or the fields left to
/// fix), and the submit button (disabled while filing). Every change saves the draft.
pub(super) fn frame<D: FormDraft>(
    kit: Kit<D>,
    l: Lang,
    f: Frame,
    fields: Element,
    submit: impl FnMut(MouseEvent) + 'static,
) -> Element {
    let Kit {
        form,
        draft,
        place,
        photos,
        errors,
        general,
        saving,
        ..
    } = kit;
    let session = consume_context::<crate::app::Session>();
    let dr = draft.read();
    let (value, floor) = (dr.urgency().to_owned(), dr.floor());
    drop(dr);
    rsx! {
        div { class: "form {form}-form",
            {fields}
            UrgencyField { id: f.urgency_id, value, floor, error: err(errors, "urgency"),
                onchange: move |v| kit.edit(|d: &mut D| d.set_urgency(v)) }
            PhotoPicker { form, photos }
            LocationBlock { place }
            if session.patrol.read().is_some() { p { class: "hint", {t(l, "将关联到当前巡防", "Will be linked to the running patrol")} } }
            if let Some(g) = summary(l, general, errors, f.labels) { ErrorNote { text: g } }
            button { id: f.submit_id, class: if f.danger { "big primary danger" } else { "big primary" }, "data-submit": form,
                disabled: saving(), onclick: submit, {t(l, f.submit.0, f.submit.1)} }
            p { class: "hint", {t(l, "草稿随输入自动保存", "Draft saved as you type")} }
            if let Some((zh, en)) = f.after { p { class: "hint", {t(l, zh, en)} } }
        }
    }
}

/// Where a report is placed: what the location source said as the form opened (or at the
/// last 重新定位), or the coordinates the worker typed.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Place {
    Sensed(Locating),
    Typed(GeoPoint),
}

impl Place {
    /// The point the record is filed with: a fix (a poor one too, with its accuracy, which the
    /// record keeps), the typed one, or none.
    fn point(&self) -> Option<GeoPoint> {
        match self {
            Place::Sensed(s) => s.fix().map(|f| f.point),
            Place::Typed(p) => Some(*p),
        }
    }
}

/// The household a report is for, when it was started from the household's page
/// ([`super::households::HouseholdReport`] provides it around the form).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReportFor(pub Uuid);

/// The services, from an event handler (outside a component's hooks).
fn use_services_now() -> crate::app::Services {
    consume_context::<crate::app::Services>()
}

/// Where a record made here belongs, and what to warn about.
fn place_grid(s: &Store, p: Option<&GeoPoint>) -> Result<(Uuid, Option<String>), StoreError> {
    let grids = s.grids()?;
    let first = grids.first().map(|g| g.id).ok_or_else(|| {
        StoreError::Conflict(
            "本机还没有网格：请先登录并同步一次 (this device holds no grid yet: sign in and sync first)"
                .into(),
        )
    })?;
    let Some(p) = p else { return Ok((first, None)) };
    Ok(match s.locate(p)? {
        Location::Inside { grid } | Location::OnBoundary { grid, .. } => (grid, None),
        Location::Outside { nearest } => (
            nearest.map(|(g, _)| g).unwrap_or(first),
            Some("此位置不在我的网格内，将记入最近的网格 (outside my grids: filed under the nearest)".into()),
        ),
    })
}

/// The captured location with its accuracy, age and grid, or why there is none (permission
/// refused, no fix yet), with a warning on a poor fix; re-capture and manual entry always.
#[component]
fn LocationBlock(place: Signal<Place>) -> Element {
    let services = use_services();
    let store = use_store();
    let l = *use_lang().read();
    let mut place = place;
    let mut manual = use_signal(String::new);
    let mut error = use_signal(|| None::<String>);
    let loc = services.location.clone();
    let now = services.now();
    let here = place();
    let p = here.point();
    let info = store.read(|s| {
        let grids = s.grids()?;
        let name = |id: Uuid| {
            grids
                .iter()
                .find(|g| g.id == id)
                .map(|g| g.name.clone())
                .unwrap_or_default()
        };
        Ok(match &p {
            None => None,
            Some(p) => Some(match s.locate(p)? {
                Location::Inside { grid } | Location::OnBoundary { grid, .. } => {
                    (name(grid), false)
                }
                Location::Outside { nearest } => {
                    (nearest.map(|(g, _)| name(g)).unwrap_or_default(), true)
                }
            }),
        })
    });
    let refused = PlatformError::Refused.explain(l);
    rsx! {
        div { class: "location",
            span { class: "field-label", {t(l, "位置（自动获取）", "Location (captured automatically)")} }
            match &here {
                Place::Sensed(Locating::Good(f) | Locating::Poor(f)) => rsx! {
                    div { id: "loc-coords", class: "coords",
                        "{f.point.lon:.5}, {f.point.lat:.5}"
                        span { class: "muted", " · " {services.location.source()} }
                    }
                    div { id: "loc-quality", class: "muted", {fix_quality(l, f, now)} }
                },
                Place::Typed(p) => rsx! {
                    div { id: "loc-coords", class: "coords",
                        "{p.lon:.5}, {p.lat:.5}"
                        span { class: "muted", " · " {t(l, "手动输入", "typed in")} }
                    }
                },
                Place::Sensed(_) => rsx! { div { id: "loc-coords", class: "coords muted", {t(l, "未定位", "No fix")} } },
            }
            match &here {
                Place::Sensed(Locating::Poor(f)) => rsx! {
                    div { id: "loc-state", class: "note warn", role: "alert",
                        {t(l, "⚠ 定位精度较差", "⚠ Poor accuracy")}
                        if let Some(a) = f.accuracy_m() { "（± {a:.0} m）" }
                        {t(l, "：可到开阔处点“重新定位”，或在下方手动输入经纬度。", ": tap Locate again in the open, or type lon,lat below.")} }
                },
                Place::Sensed(Locating::Refused) => rsx! {
                    div { id: "loc-state", class: "note warn", role: "alert", "data-state": "refused", "{refused}" }
                },
                Place::Sensed(Locating::NoFix(_)) => rsx! {
                    div { id: "loc-state", class: "note warn", role: "alert", "data-state": "no-fix",
                        {t(l, "还没有定位：请打开手机的定位并到开阔处稍候，点“重新定位”，或在下方手动输入经纬度。",
                           "No location fix yet: switch location on and wait in the open, tap Locate again, or type lon,lat below.")} }
                },
                _ => rsx! {},
            }
            match info {
                Ok(Some((name, false))) => rsx! { div { id: "loc-grid", class: "grid-ok", {t(l, "所在网格：", "Grid: ")} "{name}" } },
                Ok(Some((name, true))) => rsx! { div { id: "loc-grid", class: "note warn", role: "alert",
                    {t(l, "⚠ 不在我的网格内，最近网格：", "⚠ Outside my grids; nearest: ")} "{name}" } },
                Ok(None) => rsx! {},
                Err(e) => rsx! { ErrorNote { text: e } },
            }
            div { class: "row",
                button { id: "loc-refresh", class: "small", onclick: move |_| {
                    // A new reading replaces a sensed one; a typed point stays unless a fix comes.
                    let reading = loc.fix();
                    if reading.is_ok() || matches!(*place.peek(), Place::Sensed(_)) {
                        place.set(Place::Sensed(Locating::of(reading)));
                        error.set(None);
                    } else if let Err(e) = reading {
                        error.set(Some(e.explain(l)));
                    }
                }, {t(l, "重新定位", "Locate again")} }
                input { id: "loc-manual", class: "grow", placeholder: t(l, "手动输入 经度,纬度", "Manual lon,lat"), value: "{manual}",
                    oninput: move |e| manual.set(e.value()) }
                button { id: "loc-set", class: "small", onclick: move |_| {
                    let parsed = manual.peek().split_once(',').and_then(|(a, b)| Some((a.trim().parse::<f64>().ok()?, b.trim().parse::<f64>().ok()?)));
                    match parsed.map(|(lon, lat)| GeoPoint::new(lon, lat, None)) {
                        Some(Ok(g)) => { place.set(Place::Typed(g)); error.set(None); }
                        Some(Err(e)) => error.set(Some(e.message(l))),
                        None => error.set(Some(t(l, "请按「经度,纬度」填写，如 115.8921,28.6765", "Write it as lon,lat, e.g. 115.8921,28.6765").into())),
                    }
                }, {t(l, "使用", "Use")} }
            }
            if let Some(e) = error() { ErrorNote { text: e } }
        }
    }
}

/// The photos a draft holds, as the picker lists them.
fn staged(store: &StoreHandle, form: &str) -> Result<Vec<StagedPhoto>, String> {
    store.read(|s| s.staged_photos(form))
}

/// Keeps a picked photo with the draft of `form` in the store (prepared first: upright,
/// scaled, re-encoded without metadata, off the UI thread) and lists the draft's photos again,
/// or says beside the field why it could not. The rest of the form is untouched either way.
#[allow(clippy::too_many_arguments)]
async fn stage(
    store: StoreHandle,
    form: &'static str,
    name: String,
    bytes: Vec<u8>,
    now: chrono::DateTime<chrono::Utc>,
    l: Lang,
    mut photos: Signal<Vec<StagedPhoto>>,
    mut error: Signal<Option<String>>,
) {
    let n = name.clone();
    let prepared = match tokio::task::spawn_blocking(move || photo::prepare(&n, &bytes)).await {
        Ok(p) => p,
        Err(e) => Err(photo::PhotoError::Corrupt {
            name: name.clone(),
            why: e.to_string(),
        }),
    };
    let p = match prepared {
        Ok(p) => p,
        Err(e) => {
            error.set(Some(e.message(l)));
            return;
        }
    };
    match store
        .write(|s| s.stage_photo(form, &p.bytes, p.mime, &name, now))
        .map_err(|e| {
            format!(
                "{}：{e}",
                t(
                    l,
                    "照片未能保存，请重试",
                    "The photo could not be saved; try again"
                )
            )
        })
        .and_then(|_| staged(&store, form))
    {
        Ok(list) => {
            photos.set(list);
            error.set(None);
        }
        Err(e) => error.set(Some(e)),
    }
}

/// A file the webview read itself (where the file event brings no bytes).
#[derive(Deserialize)]
struct PickedInPage {
    name: String,
    size: usize,
    b64: Option<String>,
}

/// A picked file: its name and its bytes, or why they could not be had.
type Picked = (String, Result<Vec<u8>, photo::PhotoError>);

/// Reads the files chosen in the `photo-file` input inside the webview (FileReader), for
/// platforms whose file event carries names but no bytes (the liveview harness: Dioxus's
/// file data does not cross its websocket). Files over the limit come back without bytes.
async fn read_in_page() -> Result<Vec<Picked>, String> {
    let script = format!(
        r#"const input = document.getElementById('photo-file');
const files = Array.from((input && input.files) || []);
const out = [];
for (const f of files) {{
  if (f.size > {max}) {{ out.push({{ name: f.name, size: f.size, b64: null }}); continue; }}
  const buf = new Uint8Array(await f.arrayBuffer());
  let s = '';
  for (let i = 0; i < buf.length; i += 0x8000) s += String.fromCharCode.apply(null, buf.subarray(i, i + 0x8000));
  out.push({{ name: f.name, size: f.size, b64: btoa(s) }});
}}
if (input) input.value = '';
return out;"#,
        max = photo::MAX_INPUT_BYTES
    );
    let picked: Vec<PickedInPage> = document::eval(&script)
        .join()
        .await
        .map_err(|e| e.to_string())?;
    use base64::Engine;
    Ok(picked
        .into_iter()
        .map(|f| {
            let bytes = match f.b64 {
                Some(b) => base64::engine::general_purpose::STANDARD
                    .decode(b)
                    .map_err(|e| photo::PhotoError::Corrupt {
                        name: f.name.clone(),
                        why: e.to_string(),
                    }),
                None => Err(photo::PhotoError::TooLarge {
                    name: f.name.clone(),
                    size: f.size,
                    max: photo::MAX_INPUT_BYTES,
                }),
            };
            (f.name, bytes)
        })
        .collect())
}

/// The bytes of the files a file event chose: from the event where the platform gives them
/// (desktop webview, phones), else read inside the page.
async fn picked_files(files: Vec<dioxus::html::FileData>) -> Result<Vec<Picked>, String> {
    let mut got = Vec::new();
    for f in &files {
        match f.read_bytes().await {
            Ok(b) if !b.is_empty() || f.size() == 0 => got.push((f.name(), Ok(b.to_vec()))),
            _ => return read_in_page().await,
        }
    }
    if got.is_empty() {
        return read_in_page().await;
    }
    Ok(got)
}

/// Photos attached to a report while it is a draft: the phone's own picker, which opens the
/// camera (`capture`), or the platform's camera where the picker cannot. Each is kept in the
/// store with the draft of `form` the moment it is added, so leaving the screen or closing the
/// app loses none of them.
#[component]
pub(crate) fn PhotoPicker(form: &'static str, photos: Signal<Vec<StagedPhoto>>) -> Element {
    let services = use_services();
    let store = use_store();
    let l = *use_lang().read();
    let mut photos = photos;
    let mut error = use_signal(|| None::<String>);
    let mut busy = use_signal(|| 0usize);
    let list = photos();
    // Thumbnails of the store's copies, so the worker sees which photos the draft holds.
    let thumbs: Vec<String> = list
        .iter()
        .map(|p| {
            store
                .read(|s| s.photo(&p.sha256))
                .map(|(b, _)| photo::thumbnail_url(&b))
                .unwrap_or_default()
        })
        .collect();
    let (st_pick, sv_pick) = (store.clone(), services.clone());
    let (st_cam, st_rm) = (store.clone(), store.clone());
    rsx! {
        div { class: if error().is_some() { "photos field invalid" } else { "photos field" },
            span { class: "field-label", {t(l, "照片", "Photos")} " ({list.len()})" }
            ul { class: "photo-list", id: "photo-list",
                for (p, src) in list.into_iter().zip(thumbs) {
                    li { key: "{p.sha256}",
                        img { class: "thumb small", src: "{src}", alt: "{p.name}" }
                        span { class: "grow", "{p.name} ({p.size.div_ceil(1024)} KB)" }
                        button { class: "small", "data-unstage": "{p.name}", title: t(l, "移除", "Remove"), onclick: {
                            let (st, sha) = (st_rm.clone(), p.sha256.clone());
                            move |_| match st.write(|s| s.unstage_photo(form, &sha)).map_err(|e| e.to_string()).and_then(|_| staged(&st, form)) {
                                Ok(list) => photos.set(list),
                                Err(e) => error.set(Some(e)),
                            }
                        }, "✕" } }
                }
            }
            label { class: "photo-pick big", r#for: "photo-file",
                {t(l, "拍照或选择照片", "Take or choose photos")}
            }
            input { id: "photo-file", class: "photo-input", r#type: "file", accept: "image/*",
                capture: "environment", multiple: true,
                onchange: move |e| {
                    let files = e.files();
                    let (st, sv) = (st_pick.clone(), sv_pick.clone());
                    spawn(async move {
                        busy += 1;
                        match picked_files(files).await {
                            Ok(picked) => {
                                for (name, bytes) in picked {
                                    match bytes {
                                        Ok(b) => stage(st.clone(), form, name, b, sv.now(), l, photos, error).await,
                                        Err(e) => error.set(Some(e.message(l))),
                                    }
                                }
                            }
                            Err(e) => error.set(Some(format!("{}（{e}）", t(l, "没能读取所选照片，请重新选择", "The chosen photos could not be read; choose them again")))),
                        }
                        busy -= 1;
                    });
                }
            }
            if busy() > 0 { span { class: "muted", id: "photo-busy", {t(l, "正在处理照片…", "Preparing the photos…")} } }
            if services.camera.available() {
                button { id: "photo-camera", class: "small", "data-add-photo": form, onclick: move |_| {
                    match services.camera.take() {
                        Ok(p) => { spawn(stage(st_cam.clone(), form, p.name, p.bytes, services.now(), l, photos, error)); }
                        Err(e) => error.set(Some(e.explain(l))),
                    }
                }, {t(l, "用相机拍照", "Use the camera")} }
            }
            if let Some(e) = error() { span { class: "field-error", role: "alert", id: "photo-error", "{e}" } }
        }
    }
}

/// Shows a store error from submitting: field messages go beside fields, others on top.
fn submit_error(
    l: Lang,
    e: StoreError,
    mut errors: Signal<Option<ValidationErrors>>,
    mut general: Signal<Option<String>>,
) {
    match e {
        StoreError::Invalid(v) => {
            // The summary is read from the errors as they stand (see `summary`), so it
            // shrinks as the worker fixes each field.
            general.set(None);
            errors.set(Some(v));
        }
        other => general.set(Some(other.explain(l))),
    }
}

/// The note over a form's submit button: a failure that is no field's, or what is still wrong
/// with the fields since the last save (nothing once every one is fixed), each field named as
/// the form names it (`labels`: field, 中文, English) or else by its usual label.
fn summary(
    l: Lang,
    general: Signal<Option<String>>,
    errors: Signal<Option<ValidationErrors>>,
    labels: &[(&str, &'static str, &'static str)],
) -> Option<String> {
    general().or_else(|| {
        errors().map(|v| {
            let each: Vec<String> = v
                .errors
                .iter()
                .map(|e| match labels.iter().find(|(f, _, _)| *f == e.field) {
                    Some((_, zh, en)) => e.problem.text(l, t(l, zh, en)),
                    None => e.message(l),
                })
                .collect();
            format!(
                "{}{}",
                t(l, "没有保存，请按提示修改：", "Not saved; fix these: "),
                each.join(if l == Lang::Zh { "；" } else { "; " })
            )
        })
    })
}

/// 紧急程度: the worker's choice, never below `floor` (what the record's own facts make it: a
/// 重大 hazard is at least 紧急); the choices below it are shown but cannot be taken.
#[component]
pub(crate) fn UrgencyField(
    id: &'static str,
    value: String,
    floor: Urgency,
    error: FieldCheck,
    onchange: EventHandler<String>,
) -> Element {
    let l = *use_lang().read();
    let current = parse_code(&value, Urgency::Normal).at_least(floor);
    rsx! {
        Field { label: t(l, "紧急程度", "Urgency").to_string(), error,
            select { id, onchange: move |e| onchange.call(e.value()),
                for u in Urgency::ALL.iter().copied() {
                    option { value: u.code(), selected: u == current, disabled: u.at_least(floor) != u, {u.label(l)} }
                }
            }
        }
    }
}

/// The urgency a form files with: the chosen one (blank: the floor), never below the floor.
fn chosen_urgency(value: &str, floor: Urgency) -> Urgency {
    parse_code(value, Urgency::Normal).at_least(floor)
}

/// The `FormDraft` of a draft struct with an `urgency` field, its floor from `floor`.
macro_rules! form_draft {
    ($t:ty) => {
        form_draft!($t, |_d| $crate::domain::codes::Urgency::Normal);
    };
    ($t:ty, |$d:ident| $floor:expr) => {
        impl $crate::app::views::report::FormDraft for $t {
            fn urgency(&self) -> &str {
                &self.urgency
            }
            fn set_urgency(&mut self, code: String) {
                self.urgency = code;
            }
            fn floor(&self) -> $crate::domain::codes::Urgency {
                let $d = self;
                $floor
            }
        }
    };
}
pub(super) use form_draft;

#[derive(Serialize, Deserialize, Default, Clone, PartialEq)]
struct HazardDraft {
    category: String,
    severity: String,
    description: String,
    place: String,
    #[serde(default)]
    urgency: String,
}
form_draft!(HazardDraft, |d| parse_code(&d.severity, Severity::Low)
    .urgency());

#[component]
fn HazardForm() -> Element {
    let l = *use_lang().read();
    let kit = use_kit::<HazardDraft>("hazard");
    let (d, errors) = (kit.draft, kit.errors);
    let submit = move |_| {
        kit.file(
            Domain::Hazard,
            |common, dr: &HazardDraft| {
                Ok(Hazard {
                    common,
                    category: parse_code(&dr.category, HazardCategory::Other),
                    severity: parse_code(&dr.severity, Severity::Low),
                    description: dr.description.trim().to_owned(),
                    place: dr.place.trim().to_owned(),
                    owner: None,
                    due_date: None,
                })
            },
            |_, _, _, _| Ok(()),
        )
    };
    let dr = d();
    let fields = rsx! {
        Field { label: t(l, "类别", "Category").to_string(), error: err(errors, "category"),
            select { id: "hz-category", onchange: move |e| kit.edit(|d| d.category = e.value()),
                {code_options(l, parse_code(&dr.category, HazardCategory::Other))} } }
        Field { label: t(l, "等级", "Severity").to_string(), error: err(errors, "severity"),
            select { id: "hz-severity", onchange: move |e| kit.edit(|d| d.severity = e.value()),
                {code_options(l, parse_code(&dr.severity, Severity::Low))} } }
        Field { label: t(l, "隐患描述", "Description").to_string(), error: err(errors, "description"),
            textarea { id: "hz-description", rows: 4, value: "{dr.description}",
                placeholder: t(l, "看到了什么、在哪里、有多危险", "What, where, how dangerous"),
                oninput: move |e| kit.edit(|d| d.description = e.value()) }
            Counter { text: dr.description.clone(), max: TEXT_MAX } }
        Field { label: t(l, "具体地点", "Place").to_string(), error: err(errors, "place"),
            input { id: "hz-place", value: "{dr.place}", oninput: move |e| kit.edit(|d| d.place = e.value()) } }
    };
    frame(
        kit,
        l,
        Frame {
            urgency_id: "hz-urgency",
            submit_id: "hz-submit",
            submit: ("提交隐患", "Submit hazard"),
            danger: false,
            after: None,
            labels: &[],
        },
        fields,
        submit,
    )
}

#[derive(Serialize, Deserialize, Default, Clone, PartialEq)]
struct OpinionDraft {
    category: String,
    content: String,
    raised_by: String,
    deliberation: bool,
    #[serde(default)]
    urgency: String,
}
form_draft!(OpinionDraft);

#[component]
fn OpinionForm() -> Element {
    let l = *use_lang().read();
    let kit = use_kit::<OpinionDraft>("opinion");
    let (d, errors) = (kit.draft, kit.errors);
    let submit = move |_| {
        kit.file(
            Domain::Opinion,
            |common, dr: &OpinionDraft| {
                Ok(Opinion {
                    common,
                    category: parse_code(&dr.category, OpinionCategory::ALL[0]),
                    content: dr.content.trim().to_owned(),
                    raised_by: Some(dr.raised_by.trim().to_owned()).filter(|s| !s.is_empty()),
                    deliberation: dr.deliberation.then_some(DeliberationStage::Proposed),
                    deliberation_notes: None,
                })
            },
            |_, _, _, _| Ok(()),
        )
    };
    let dr = d();
    let fields = rsx! {
        Field { label: t(l, "类别", "Category").to_string(), error: err(errors, "category"),
            select { id: "op-category", onchange: move |e| kit.edit(|d| d.category = e.value()),
                {code_options(l, parse_code(&dr.category, OpinionCategory::ALL[0]))} } }
        Field { label: t(l, "内容", "Content").to_string(), error: err(errors, "content"),
            textarea { id: "op-content", rows: 4, value: "{dr.content}", oninput: move |e| kit.edit(|d| d.content = e.value()) }
            Counter { text: dr.content.clone(), max: TEXT_MAX } }
        Field { label: t(l, "反映人（可空）", "Raised by (optional)").to_string(), error: err(errors, "raised_by"),
            input { id: "op-raised-by", value: "{dr.raised_by}", oninput: move |e| kit.edit(|d| d.raised_by = e.value()) } }
        label { class: "check",
            input { id: "op-deliberation", r#type: "checkbox", checked: dr.deliberation, onchange: move |e| kit.edit(|d| d.deliberation = e.checked()) }
            {t(l, "进入“三议四步”议事流程（群众提→支部审→贤良议→群众评）", "Start the deliberation track (propose → branch review → elders → residents)")}
        }
    };
    frame(
        kit,
        l,
        Frame {
            urgency_id: "op-urgency",
            submit_id: "op-submit",
            submit: ("提交社情民意", "Submit opinion"),
            danger: false,
            after: None,
            labels: &[],
        },
        fields,
        submit,
    )
}

#[derive(Serialize, Deserialize, Default, Clone, PartialEq)]
struct PartyDraft {
    name: String,
    role: String,
    phone: String,
}

#[derive(Serialize, Deserialize, Default, Clone, PartialEq)]
struct DisputeDraft {
    category: String,
    summary: String,
    parties: Vec<PartyDraft>,
    #[serde(default)]
    urgency: String,
}
form_draft!(DisputeDraft);

#[component]
fn DisputeForm() -> Element {
    let l = *use_lang().read();
    let kit = use_kit::<DisputeDraft>("dispute");
    let (mut d, errors) = (kit.draft, kit.errors);
    if d.peek().parties.is_empty() {
        d.write().parties = vec![
            PartyDraft {
                role: "APPLICANT".into(),
                ..Default::default()
            },
            PartyDraft {
                role: "RESPONDENT".into(),
                ..Default::default()
            },
        ];
    }
    let submit = move |_| {
        kit.file(
            Domain::Dispute,
            |common, dr: &DisputeDraft| {
                Ok(Dispute {
                    common,
                    category: parse_code(&dr.category, DisputeCategory::ALL[0]),
                    summary: dr.summary.trim().to_owned(),
                    parties: dr
                        .parties
                        .iter()
                        .filter(|p| !p.name.trim().is_empty())
                        .map(|p| Party {
                            name: p.name.trim().to_owned(),
                            role: parse_code(&p.role, PartyRole::Applicant),
                            phone: Some(p.phone.trim().to_owned()).filter(|s| !s.is_empty()),
                            person_id: None,
                        })
                        .collect(),
                    follow_up: None,
                })
            },
            |_, _, _, _| Ok(()),
        )
    };
    let dr = d();
    let errs = errors();
    let fields = rsx! {
        Field { label: t(l, "类别", "Category").to_string(), error: err(errors, "category"),
            select { id: "dp-category", onchange: move |e| kit.edit(|d| d.category = e.value()),
                {code_options(l, parse_code(&dr.category, DisputeCategory::ALL[0]))} } }
        Field { label: t(l, "纠纷简述", "Summary").to_string(), error: err(errors, "summary"),
            textarea { id: "dp-summary", rows: 3, value: "{dr.summary}", oninput: move |e| kit.edit(|d| d.summary = e.value()) }
            Counter { text: dr.summary.clone(), max: TEXT_MAX } }
        h3 { {t(l, "当事人", "Parties")} }
        if let Some(e) = err_prefix(l, &errs, "parties") { span { class: "field-error", role: "alert", "{e}" } }
        for (i, p) in dr.parties.iter().enumerate() {
            PartyRow { key: "{i}", index: i, party: p.clone(), draft: d }
        }
        button { id: "dp-add-party", class: "small", onclick: move |_| kit.edit(|d| d.parties.push(PartyDraft { role: "THIRD".into(), ..Default::default() })),
            {t(l, "+ 添加当事人", "+ Add party")} }
    };
    frame(
        kit,
        l,
        Frame {
            urgency_id: "dp-urgency",
            submit_id: "dp-submit",
            submit: ("登记纠纷", "Register dispute"),
            danger: false,
            after: Some((
                "登记后可在记录中添加调解、回访和满意度",
                "After registering, add mediation sessions and the follow-up on the record",
            )),
            labels: &[],
        },
        fields,
        submit,
    )
}

#[component]
fn PartyRow(index: usize, party: PartyDraft, draft: Signal<DisputeDraft>) -> Element {
    let l = *use_lang().read();
    let store = use_store();
    let mut draft = draft;
    let mut set = move |f: &dyn Fn(&mut PartyDraft)| {
        if let Some(p) = draft.write().parties.get_mut(index) {
            f(p);
        }
        let _ = store.read(|s| drafts::save(s, "dispute", &*draft.peek()));
    };
    let mut set2 = set.clone();
    let mut set3 = set.clone();
    rsx! {
        div { class: "party row",
            select { class: "party-role", onchange: move |e| { let v = e.value(); set(&|p| p.role = v.clone()); },
                {code_options(l, parse_code(&party.role, PartyRole::Applicant))} }
            input { class: "party-name grow", placeholder: t(l, "姓名", "Name"), value: "{party.name}",
                oninput: move |e| { let v = e.value(); set2(&|p| p.name = v.clone()); } }
            input { class: "party-phone", placeholder: t(l, "电话", "Phone"), inputmode: "tel", value: "{party.phone}",
                oninput: move |e| { let v = e.value(); set3(&|p| p.phone = v.clone()); } }
        }
    }
}

#[derive(Serialize, Deserialize, Default, Clone, PartialEq)]
struct EmergencyDraft {
    category: String,
    level: String,
    title: String,
    text: String,
    casualties: String,
    #[serde(default)]
    urgency: String,
}
form_draft!(EmergencyDraft, |d| parse_code(&d.level, EmergencyLevel::Iv)
    .urgency());

#[component]
fn EmergencyForm() -> Element {
    let l = *use_lang().read();
    let kit = use_kit::<EmergencyDraft>("emergency");
    let (d, mut errors) = (kit.draft, kit.errors);
    let submit = move |_| {
        // A count that is not a number is the worker's to fix, not to drop.
        let typed = d.peek().casualties.trim().to_owned();
        let casualties = if typed.is_empty() {
            None
        } else {
            match typed.parse::<u32>() {
                Ok(n) => Some(n),
                Err(_) => {
                    errors.set(Some(ValidationErrors::single(
                        "casualties",
                        Problem::NotWholeNumber {
                            typed: typed.clone(),
                        },
                    )));
                    return;
                }
            }
        };
        kit.file(
            Domain::Emergency,
            |common, dr: &EmergencyDraft| {
                Ok(Emergency {
                    occurred_at: common.created_at,
                    common,
                    category: parse_code(&dr.category, EmergencyCategory::Natural),
                    level: parse_code(&dr.level, EmergencyLevel::Iv),
                    title: dr.title.trim().to_owned(),
                })
            },
            move |tx, x: &Emergency, actor, now| {
                let rep = EmergencyReport {
                    id: new_id(),
                    emergency_id: x.common.id,
                    stage: ReportStage::Initial,
                    text: d.peek().text.trim().to_owned(),
                    casualties,
                    author: actor.to_owned(),
                    created_at: now,
                };
                crate::store::records::add_emergency_report_in(tx, &rep, actor, now)
            },
        )
    };
    let dr = d();
    let fields = rsx! {
        p { class: "note warn", {t(l, "突发事件优先上传；先初报，后续报、终报。", "Emergencies upload first: initial report now, updates and final later.")} }
        Field { label: t(l, "类别", "Category").to_string(), error: err(errors, "category"),
            select { id: "em-category", onchange: move |e| kit.edit(|d| d.category = e.value()),
                {code_options(l, parse_code(&dr.category, EmergencyCategory::Natural))} } }
        Field { label: t(l, "等级", "Level").to_string(), error: err(errors, "level"),
            select { id: "em-level", onchange: move |e| kit.edit(|d| d.level = e.value()),
                {code_options(l, parse_code(&dr.level, EmergencyLevel::Iv))} } }
        Field { label: t(l, "标题", "Title").to_string(), error: err(errors, "title"),
            input { id: "em-title", value: "{dr.title}", oninput: move |e| kit.edit(|d| d.title = e.value()) } }
        Field { label: t(l, "初报内容", "Initial report").to_string(), error: err(errors, "text"),
            textarea { id: "em-text", rows: 4, value: "{dr.text}", oninput: move |e| kit.edit(|d| d.text = e.value()) }
            Counter { text: dr.text.clone(), max: TEXT_MAX } }
        Field { label: t(l, "伤亡人数（可空）", "Casualties (optional)").to_string(), error: err(errors, "casualties"),
            input { id: "em-casualties", inputmode: "numeric", value: "{dr.casualties}", oninput: move |e| kit.edit(|d| d.casualties = e.value()) } }
    };
    frame(
        kit,
        l,
        Frame {
            urgency_id: "em-urgency",
            submit_id: "em-submit",
            submit: ("立即初报", "Send initial report"),
            danger: true,
            after: None,
            labels: &[],
        },
        fields,
        submit,
    )
}
