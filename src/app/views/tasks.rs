//! The county's tasks on the phone: the open ones at the top of Today (due date, overdue in
//! red, what each is about) and a task's own screen with the county's note, what it is about,
//! and the 完成 form (a note; photos, at least one for a hazard recheck).

use std::collections::HashSet;
use std::sync::Mutex;

use dioxus::prelude::*;
use uuid::Uuid;

use crate::app::Route;
use crate::app::components::{ErrorNote, Field, err};
use crate::app::context::{bump, use_services, use_session, use_store};
use crate::app::i18n::{t, use_lang};
use crate::app::views::report::PhotoPicker;
use crate::domain::codes::{Coded, Lang, TaskStatus};
use crate::domain::model::Task;
use crate::domain::validate::ValidationErrors;
use crate::store::StoreError;
use crate::store::drafts::StagedPhoto;
use crate::store::tasks::photo_form;

/// Words for when a task is due.
pub fn due_words(l: Lang, task: &Task, today: chrono::NaiveDate) -> String {
    let days = (task.due_date - today).num_days();
    match (l, days) {
        (Lang::Zh, 0) => "今日到期".into(),
        (Lang::Zh, n) if n < 0 => format!("已超期 {} 天", -n),
        (Lang::Zh, n) => format!("{} 截止（{n} 天后）", task.due_date.format("%m-%d")),
        (Lang::En, 0) => "due today".into(),
        (Lang::En, n) if n < 0 => format!("{} days overdue", -n),
        (Lang::En, n) => format!("due {} (in {n} days)", task.due_date.format("%m-%d")),
    }
}

/// Today's list of open tasks, first on the screen; nothing when there are none.
#[component]
pub fn TodayTasks() -> Element {
    let services = use_services();
    let session = use_session();
    let store = use_store();
    let l = *use_lang().read();
    let _rev = session.rev.read();
    let today = services.today();
    let tasks = match store.read(|s| s.open_tasks()) {
        Ok(t) => t,
        Err(e) => return rsx! { ErrorNote { text: e } },
    };
    if tasks.is_empty() {
        return rsx! {};
    }
    rsx! {
        h2 { id: "tasks-heading", {t(l, "县里派的任务", "Tasks from the county")} " ({tasks.len()})" }
        ul { class: "cards task-list", id: "task-list",
            for task in tasks.iter() {
                li { key: "{task.id}",
                    Link { class: if task.is_overdue(today) { "card task overdue" } else { "card task" },
                        "data-task": "{task.id}", to: Route::TaskPage { id: task.id },
                        div { class: "card-title", {task.kind.label(l)} " · {task.about}" }
                        div { class: "card-sub", "{task.note}" }
                        div { class: "card-tags",
                            span { class: if task.is_overdue(today) { "pill late" } else { "pill due" }, {due_words(l, task, today)} }
                        }
                    }
                }
            }
        }
    }
}

/// The staging form of a task's photo, as the picker takes it: one name per task, kept for
/// the app's life (a few bytes each).
fn form_name(task: Uuid) -> &'static str {
    static NAMES: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);
    let name = photo_form(task);
    let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
    let set = names.get_or_insert_with(HashSet::new);
    if let Some(n) = set.get(name.as_str()) {
        return n;
    }
    let leaked: &'static str = Box::leak(name.into_boxed_str());
    set.insert(leaked);
    leaked
}

/// One task: what the county asks, what it is about, and the 完成 form while it is open.
#[component]
pub fn TaskPage(id: Uuid) -> Element {
    let services = use_services();
    let session = use_session();
    let store = use_store();
    let l = *use_lang().read();
    let _rev = session.rev.read();
    let today = services.today();
    let form = form_name(id);
    let data = store.read(|s| {
        let task = s.task(id)?;
        let on_phone = task.record_id.is_some_and(|r| s.any_record(r).is_ok());
        let photos: Vec<String> = task
            .photos()
            .into_iter()
            .filter_map(|h| s.photo(h).ok())
            .map(|(b, m)| format!("data:{m};base64,{}", crate::app::components::base64(&b)))
            .collect();
        Ok((task, on_phone, photos, s.worker().to_owned()))
    });
    // Opening a task reads its feedback item.
    let (st_read, sv_read) = (store.clone(), services.clone());
    use_effect(move || {
        if let Ok(n) = st_read.read(|s| s.read_record_feedback(id, sv_read.now()))
            && n > 0
        {
            bump(session);
        }
    });
    let st_photos = store.clone();
    let photos = use_signal(move || {
        st_photos
            .read(|s| s.staged_photos(form))
            .unwrap_or_default()
    });
    let mut note = use_signal(String::new);
    let mut errors = use_signal(|| None::<ValidationErrors>);
    let mut failure = use_signal(|| None::<String>);
    let (task, on_phone, done_photos, me) = match data {
        Ok(d) => d,
        Err(e) => return rsx! { ErrorNote { text: e } },
    };
    let st = store.clone();
    let needs_photo = task.kind.needs_photo();
    let complete = move |_| {
        let text = note.peek().clone();
        match st.write(|s| s.complete_task(id, &text, services.now())) {
            Ok(_) => {
                errors.set(None);
                failure.set(None);
                bump(session);
            }
            Err(StoreError::Invalid(v)) => errors.set(Some(v)),
            Err(e) => failure.set(Some(st.explain(&e))),
        }
    };
    let overdue = task.is_overdue(today);
    let staged: Vec<StagedPhoto> = photos();
    rsx! {
        section { class: "task-page",
            p { Link { to: Route::Today {}, {t(l, "← 今日工作", "← Today")} } }
            h1 { {task.kind.label(l)} " "
                span { class: match task.status { TaskStatus::Open => "pill due", TaskStatus::Done => "pill ok", TaskStatus::Cancelled => "pill" },
                    id: "task-status", {task.status.label(l)} }
            }
            dl { class: "facts",
                dt { {t(l, "任务对象", "About")} }
                dd { id: "task-about",
                    match (task.record_id, task.household_id) {
                        (Some(r), _) if on_phone => rsx! { Link { to: Route::RecordPage { id: r }, "{task.about}" } },
                        (None, Some(h)) => rsx! { Link { to: Route::HouseholdPage { id: h }, "{task.about}" } },
                        _ => rsx! { "{task.about}" },
                    }
                }
                dt { {t(l, "完成期限", "Due")} }
                dd { class: if overdue { "late" } else { "" }, id: "task-due",
                    "{task.due_date} · " {due_words(l, &task, today)} }
                dt { {t(l, "派发人", "From")} }
                dd { "{task.assigned_by_name} · " {crate::app::context::local_time(task.created_at, "%m-%d %H:%M")} }
                dt { {t(l, "任务说明", "What to do")} }
                dd { id: "task-note", "{task.note}" }
            }
            match task.status {
                TaskStatus::Done => rsx! {
                    div { class: "note ok", id: "task-done",
                        {t(l, "已完成：", "Done: ")} {task.done_note.clone().unwrap_or_default()}
                        if let Some(at) = task.done_at { " · " {crate::app::context::local_time(at, "%m-%d %H:%M")} }
                    }
                    div { class: "photos", id: "task-done-photos",
                        for src in done_photos.iter() { img { class: "thumb", src: "{src}", alt: t(l, "现场照片", "Photo of the site") } }
                    }
                },
                TaskStatus::Cancelled => rsx! {
                    p { class: "note", id: "task-cancelled", {t(l, "县里已撤销这项任务，无需再办。", "The county cancelled this task; nothing more to do.")} }
                },
                TaskStatus::Open if task.assignee != me => rsx! {
                    p { class: "hint", {t(l, "这项任务派给了本网格的其他网格员。", "This task is another worker's of this grid.")} }
                },
                TaskStatus::Open => rsx! {
                    div { class: "form", id: "task-form",
                        Field { label: t(l, "完成情况", "What was done").to_string(), error: err(errors, "done_note"),
                            textarea { id: "done-note", name: "done_note", rows: "3", value: "{note}",
                                placeholder: t(l, "写明核实或整改的结果", "What you found or what was fixed"),
                                oninput: move |e| note.set(e.value()) }
                        }
                        Field { label: if needs_photo { t(l, "现场照片（至少一张）", "Photos of the site (at least one)").to_string() } else { t(l, "现场照片（可选）", "Photos of the site (optional)").to_string() },
                            error: err(errors, "done_photo"),
                            PhotoPicker { form, photos }
                        }
                        if staged.len() > 1 {
                            p { class: "hint", id: "task-photo-count", {t(l, "完成时上传全部 ", "All ")} "{staged.len()}" {t(l, " 张照片。", " photos are sent with the completion.")} }
                        }
                        if let Some(f) = failure() { ErrorNote { text: f } }
                        button { class: "big primary", id: "task-complete", onclick: complete, {t(l, "完成", "Complete")} }
                    }
                },
            }
        }
    }
}
