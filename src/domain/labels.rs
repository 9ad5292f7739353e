//! The name of each field as people read it, for messages that are not beside the field
//! itself (a summary over a form, the dashboard's notices, an import report, a refused
//! upload). A form's own screen may name a field more precisely ("调解经过" for a mediation's
//! `notes`); beside a field, the screen's label is used.

use super::codes::Lang;

/// An error a person reads: worded in their language, naming fields as their screens do and
/// saying what to do. `Display` stays the English, developer-facing form (logs, the API).
pub trait Explain {
    fn explain(&self, lang: Lang) -> String;
}

impl Explain for super::validate::ValidationErrors {
    fn explain(&self, lang: Lang) -> String {
        self.message(lang)
    }
}

impl Explain for super::lifecycle::TransitionError {
    fn explain(&self, lang: Lang) -> String {
        self.text(lang)
    }
}

impl Explain for super::validate::IdNumberError {
    fn explain(&self, lang: Lang) -> String {
        self.text(lang, &field_label("id_number", lang))
    }
}

impl Explain for super::codes::UnknownCode {
    fn explain(&self, lang: Lang) -> String {
        match lang {
            Lang::Zh => format!(
                "「{}」不是可选的{}，请从这些中选：{}",
                self.code,
                self.kind_zh(),
                self.known_zh
            ),
            Lang::En => self.to_string(),
        }
    }
}

/// The label of a field path in `lang`: `parties[1].phone` reads "当事人 2 电话". A path this
/// table does not know is shown as it is.
pub fn field_label(path: &str, lang: Lang) -> String {
    let zh = lang == Lang::Zh;
    // parties[i].x, photos[i], entries[i].x: the item's number, counted from 1.
    if let Some((head, rest)) = path.split_once('[')
        && let Some((index, tail)) = rest.split_once(']')
        && let Ok(i) = index.parse::<usize>()
    {
        let tail = tail.trim_start_matches('.');
        // A pushed batch's `entries[3]` is the upload, not a field of the form.
        if head == "entries" && !tail.is_empty() {
            return field_label(tail, lang);
        }
        let item = format!("{} {}", field_label(head, lang), i + 1);
        return if tail.is_empty() {
            item
        } else {
            format!("{item} {}", field_label(tail, lang))
        };
    }
    match known(path) {
        Some((z, e)) => (if zh { z } else { e }).to_owned(),
        None => match path.rsplit_once('.') {
            // location.lon, follow_up.on, fields.description: the last part names it.
            Some((_, last)) => field_label(last, lang),
            None => path.to_owned(),
        },
    }
}

/// Whether `s` holds Chinese (CJK unified ideographs): a message already worded for a reader.
pub fn has_chinese(s: &str) -> bool {
    s.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c))
}

/// Whether every part of `path` has a Chinese label.
pub fn has_label(path: &str) -> bool {
    !field_label(path, Lang::Zh)
        .chars()
        .any(|c| c.is_ascii_alphabetic() || c == '_')
}

fn known(path: &str) -> Option<(&'static str, &'static str)> {
    Some(match path {
        // People and households.
        "name" => ("姓名", "Name"),
        "sex" => ("性别", "Sex"),
        "birth_date" => ("出生日期", "Birth date"),
        "id_type" => ("证件类型", "ID type"),
        "id_number" => ("证件号码", "ID number"),
        "phone" => ("联系电话", "Phone"),
        "tags" => ("标签", "Tags"),
        "person_type" => ("人员类别", "Person type"),
        "residence" => ("居住状态", "Residence"),
        "relation" => ("与户主关系", "Relation to head"),
        "status_on" => ("变动日期", "Date of the change"),
        "origin" => ("户籍地", "Registered at"),
        "household_id" => ("户编号", "Household id"),
        "person_id" => ("人员编号", "Person id"),
        "address" => ("地址", "Address"),
        "house_no" => ("门牌号", "House number"),
        "number" => ("门牌号", "House number"),
        "house_use" => ("房屋用途", "House use"),
        "grid_code" => ("网格编码", "Grid code"),
        "grid_id" => ("网格", "Grid"),
        "grid" => ("网格", "Grid"),
        // Visits.
        "visited_on" => ("走访日期", "Visit date"),
        "next_due" => ("下次走访日期", "Next visit"),
        "purpose" => ("目的", "Purpose"),
        // Every record.
        "id" => ("记录编号", "Record id"),
        "author" => ("记录人", "Author"),
        "created_at" => ("记录时间", "Recorded at"),
        "status" => ("状态", "Status"),
        "urgency" => ("紧急程度", "Urgency"),
        "location" => ("位置", "Location"),
        "lon" => ("经度", "Longitude"),
        "lat" => ("纬度", "Latitude"),
        "accuracy_m" => ("定位精度", "Location accuracy"),
        "photos" => ("照片", "Photo"),
        "photo" => ("照片", "Photo"),
        "mime" => ("照片", "Photo"),
        "file" => ("文件", "File"),
        "domain" => ("事项类型", "Record type"),
        "category" => ("类别", "Category"),
        "notes" => ("记录", "Notes"),
        "content" => ("内容", "Content"),
        "text" => ("内容", "Text"),
        "title" => ("标题", "Title"),
        // Special population, publicity and livelihood services.
        "served_person_id" => ("服务对象", "Person served"),
        "service" => ("服务内容", "Service"),
        "audience" => ("受众人数", "Audience"),
        "matter" => ("事项", "Matter"),
        // Hazards.
        "description" => ("隐患描述", "Description"),
        "place" => ("具体地点", "Place"),
        "owner" => ("整改责任人", "Owner"),
        "severity" => ("等级", "Severity"),
        "due_date" => ("整改期限", "Due date"),
        // Opinions.
        "raised_by" => ("反映人", "Raised by"),
        "deliberation_notes" => ("议事记录", "Deliberation notes"),
        // Disputes and mediation.
        "summary" => ("纠纷简述", "Summary"),
        "parties" => ("当事人", "Party"),
        "follow_up" => ("回访", "Follow-up"),
        "follow_up.on" => ("回访日期", "Follow-up date"),
        "follow_up.notes" => ("回访情况", "Follow-up notes"),
        "follow_up.satisfaction" => ("满意度", "Satisfaction"),
        "satisfaction" => ("满意度", "Satisfaction"),
        "held_on" => ("调解日期", "Session date"),
        "method" => ("方式", "Method"),
        "participants" => ("参加人", "Participants"),
        "agreement" => ("达成协议", "Agreement"),
        "dispute_id" => ("所属纠纷", "Dispute"),
        // Patrols.
        "started_at" => ("开始时间", "Start"),
        "ended_at" => ("结束时间", "End"),
        "distance_m" => ("巡防里程", "Distance"),
        "patrol_id" => ("所属巡防", "Patrol"),
        // Emergencies.
        "occurred_at" => ("发生时间", "Occurred at"),
        "level" => ("等级", "Level"),
        "stage" => ("续报 / 终报", "Update / final"),
        "casualties" => ("伤亡人数", "Casualties"),
        "emergency_id" => ("所属突发事件", "Emergency"),
        // The county's moves on the dashboard.
        "to" => ("新状态", "New status"),
        "note" => ("说明", "Note"),
        "assignee" => ("分派给", "Assigned to"),
        "done_note" => ("完成情况", "What was done"),
        "done_photo" => ("现场照片", "Photo of the site"),
        "task_kind" => ("任务类型", "Task kind"),
        "about" => ("任务对象", "What it is about"),
        "task_note" => ("任务说明", "What to do"),
        "task_due" => ("完成期限", "Due date"),
        "reply" => ("答复", "Reply"),
        "from" => ("开始日期", "From"),
        "until" => ("结束日期", "Until"),
        "query" => ("查询条件", "Query"),
        "role" => ("角色", "Role"),
        "username" => ("用户名", "Username"),
        "password" => ("密码", "Password"),
        "display_name" => ("姓名", "Name"),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_paths_read_as_people_say_them() {
        assert_eq!(
            field_label("parties[1].phone", Lang::Zh),
            "当事人 2 联系电话"
        );
        assert_eq!(field_label("parties[0].name", Lang::En), "Party 1 Name");
        assert_eq!(field_label("location.lon", Lang::Zh), "经度");
        assert_eq!(field_label("follow_up.on", Lang::Zh), "回访日期");
        assert_eq!(field_label("fields.description", Lang::Zh), "隐患描述");
        assert_eq!(field_label("photos[2]", Lang::Zh), "照片 3");
        assert_eq!(field_label("nonsense_field", Lang::Zh), "nonsense_field");
        assert!(!has_label("nonsense_field"));
        assert!(has_label("entries[0].fields.summary"));
    }

    use crate::domain::codes::{Coded, Domain};
    use crate::domain::lifecycle::{Actor, Status, TransitionError, check_transition, lifecycle};
    use crate::domain::validate::{IdNumber, IdNumberError, Problem};
    use chrono::{NaiveDate, TimeZone, Utc};

    use super::has_chinese as has_cjk;

    /// One problem of every kind. The `match` in the test has no wildcard, so a kind added
    /// without a sample (and so without a checked wording) does not compile.
    fn one_of_each_problem() -> Vec<Problem> {
        let day = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
        let at = Utc.with_ymd_and_hms(2026, 12, 1, 8, 0, 0).unwrap();
        vec![
            Problem::Required,
            Problem::TooLong { len: 81, max: 80 },
            Problem::FutureDate {
                value: day.succ_opt().unwrap(),
                today: day,
            },
            Problem::FutureTime {
                value: at + chrono::Duration::hours(1),
                now: at,
            },
            Problem::DateFormat {
                typed: "下周五".into(),
            },
            Problem::NotWholeNumber {
                typed: "三".into()
            },
            Problem::Before {
                value: "2026-11-01".into(),
                other: "started_at".into(),
                other_value: "2026-11-02".into(),
            },
            Problem::BirthDateMismatch {
                given: day,
                from_id: day.pred_opt().unwrap(),
            },
            Problem::IdNumber(IdNumberError::Length(17)),
            Problem::Phone {
                typed: "1381234".into(),
            },
            Problem::DuplicateTag,
            Problem::NotInLifecycle {
                status: Status::Mediating,
                domain: Domain::Hazard,
            },
            Problem::NotInitialStatus {
                status: Status::Closed,
                initial: Status::Reported,
                domain: Domain::Hazard,
            },
            Problem::PhotoDigest,
            Problem::NotFinite,
            Problem::OutOfRange {
                value: "200".into(),
                limit: "180".into(),
            },
            Problem::OutsideChina {
                lon: "2.35".into(),
                lat: "48.85".into(),
            },
            Problem::BadDistance,
            Problem::NoParty,
            Problem::NoParticipant,
            Problem::OwnRecordType {
                domain: Domain::Hazard,
            },
            Problem::WrongKind {
                expected: Domain::Dispute,
            },
            Problem::Immutable,
            Problem::StatusByEdit,
            Problem::WrongGrid,
            Problem::NotRecording,
            Problem::NotImage,
            Problem::NotChosen,
            Problem::NotForDomain {
                domain: Domain::Opinion,
            },
            Problem::Headcount { value: 0, max: 100 },
            Problem::DuplicatePerson {
                name: "王小明".into(),
            },
            Problem::NewbornRelation,
            Problem::NotActiveMember {
                status: crate::domain::codes::PersonStatus::Deceased,
            },
        ]
    }

    #[test]
    fn every_problem_kind_is_worded_in_chinese_and_english() {
        let mut seen = std::collections::BTreeSet::new();
        for p in one_of_each_problem() {
            let kind = match &p {
                Problem::Required => 0,
                Problem::TooLong { .. } => 1,
                Problem::FutureDate { .. } => 2,
                Problem::FutureTime { .. } => 3,
                Problem::DateFormat { .. } => 4,
                Problem::NotWholeNumber { .. } => 5,
                Problem::Before { .. } => 6,
                Problem::BirthDateMismatch { .. } => 7,
                Problem::IdNumber(_) => 8,
                Problem::Phone { .. } => 9,
                Problem::DuplicateTag => 10,
                Problem::NotInLifecycle { .. } => 11,
                Problem::NotInitialStatus { .. } => 12,
                Problem::PhotoDigest => 13,
                Problem::NotFinite => 14,
                Problem::OutOfRange { .. } => 15,
                Problem::OutsideChina { .. } => 16,
                Problem::BadDistance => 17,
                Problem::NoParty => 18,
                Problem::NoParticipant => 19,
                Problem::OwnRecordType { .. } => 20,
                Problem::WrongKind { .. } => 21,
                Problem::Immutable => 22,
                Problem::WrongGrid => 23,
                Problem::NotRecording => 24,
                Problem::NotImage => 25,
                Problem::StatusByEdit => 26,
                Problem::NotChosen => 27,
                Problem::NotForDomain { .. } => 28,
                Problem::Headcount { .. } => 29,
                Problem::DuplicatePerson { .. } => 30,
                Problem::NewbornRelation => 31,
                Problem::NotActiveMember { .. } => 32,
                // Already worded by whoever made it; validators never do (the scan below).
                Problem::Other(_) => unreachable!("no sample of Other"),
            };
            assert!(seen.insert(kind), "two samples of kind {kind}");
            assert!(p.is_worded(), "{p:?}");
            let zh = p.text(Lang::Zh, "某字段");
            assert!(has_cjk(&zh), "{p:?} has no Chinese: {zh}");
            assert!(
                !zh.contains(" is ") && !zh.contains(" must "),
                "{p:?} reads English under zh: {zh}"
            );
            let en = p.text(Lang::En, "Some field");
            assert!(!en.is_empty() && en != zh, "{p:?} has no English: {en}");
            // A problem about the field as a whole names it (the label, as the screen shows it).
            // (Others are about the record as a whole: no party, the wrong grid, a file.)
            if matches!(
                p,
                Problem::Required
                    | Problem::TooLong { .. }
                    | Problem::FutureDate { .. }
                    | Problem::FutureTime { .. }
                    | Problem::DateFormat { .. }
                    | Problem::NotWholeNumber { .. }
                    | Problem::Before { .. }
                    | Problem::BirthDateMismatch { .. }
                    | Problem::IdNumber(_)
                    | Problem::Phone { .. }
                    | Problem::NotFinite
                    | Problem::OutOfRange { .. }
                    | Problem::StatusByEdit
                    | Problem::NotChosen
                    | Problem::NotForDomain { .. }
                    | Problem::Headcount { .. }
            ) {
                assert!(zh.contains("某字段"), "{p:?} does not name its field: {zh}");
            }
        }
        assert_eq!(seen.len(), 33);
    }

    #[test]
    fn every_id_number_error_reads_in_chinese_with_the_real_reason() {
        let today = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
        let mut kinds = std::collections::HashSet::new();
        for typed in [
            "11010519491231002",  // 17 characters
            "1101051949123100A2", // a letter inside
            "11010519491231002Y", // a check character that is neither digit nor X
            "00010519491231002X", // no such region
            "110105194913310021", // 13th month
            "110105209912310021", // born after today
            "110105194912310021", // wrong check digit (X is right)
        ] {
            let e = IdNumber::parse(typed, today).unwrap_err();
            kinds.insert(std::mem::discriminant(&e));
            let zh = e.explain(Lang::Zh);
            assert!(has_cjk(&zh) && zh.contains("证件号码"), "{typed}: {zh}");
        }
        assert_eq!(kinds.len(), 7, "one input per kind of IdNumberError");
        // An 18-digit number with a wrong check digit says so, not something else.
        assert!(matches!(
            IdNumber::parse("110105194912310021", today),
            Err(IdNumberError::CheckDigit { .. })
        ));
    }

    #[test]
    fn every_refused_status_move_reads_in_chinese() {
        let mut kinds = std::collections::HashSet::new();
        for domain in Domain::ALL {
            let lc = lifecycle(*domain);
            for from in lc.statuses() {
                for to in Status::ALL {
                    for actor in [Actor::Worker, Actor::Reviewer] {
                        let Err(e) = check_transition(uuid::Uuid::nil(), *domain, from, *to, actor)
                        else {
                            continue;
                        };
                        kinds.insert(std::mem::discriminant(&e));
                        let zh = e.explain(Lang::Zh);
                        assert!(
                            has_cjk(&zh) && zh.contains(to.zh()) && !zh.contains(to.code()),
                            "{e}: {zh}"
                        );
                        if let TransitionError::NotPermitted { .. } = e {
                            assert!(zh.contains("应由"), "{zh}");
                        }
                    }
                }
            }
        }
        assert_eq!(kinds.len(), 2, "both kinds of TransitionError were met");
    }

    /// The fields the validators and the store name: each has a label, and none of them
    /// words a problem by hand (`Problem::Other`), which would go untranslated.
    #[test]
    fn every_field_a_validator_names_has_a_label() {
        let sources = [
            ("domain/model.rs", include_str!("model.rs")),
            ("domain/geo.rs", include_str!("geo.rs")),
            ("domain/validate.rs", include_str!("validate.rs")),
            ("store/records.rs", include_str!("../store/records.rs")),
            ("store/people.rs", include_str!("../store/people.rs")),
            ("store/drafts.rs", include_str!("../store/drafts.rs")),
            (
                "server/records/apply.rs",
                include_str!("../server/records/apply.rs"),
            ),
            (
                "server/records/review.rs",
                include_str!("../server/records/review.rs"),
            ),
            (
                "server/records/mod.rs",
                include_str!("../server/records/mod.rs"),
            ),
        ];
        let calls = [
            ".text(",
            ".optional_text(",
            ".not_future_date(",
            ".not_future_time(",
            ".error(",
            "single(",
            ".nested(",
            "FieldError::new(",
        ];
        let mut fields = 0;
        for (file, src) in sources {
            // Only the code, not its tests.
            let code = src.split("#[cfg(test)]").next().unwrap();
            for call in calls {
                for (at, _) in code.match_indices(call) {
                    let rest = code[at + call.len()..].trim_start();
                    let Some(lit) = rest.strip_prefix('"') else {
                        continue; // a variable: its literal is checked where it is made
                    };
                    let field = &lit[..lit.find('"').unwrap()];
                    fields += 1;
                    assert!(
                        has_label(field),
                        "{file}: {call}\"{field}\" has no Chinese label"
                    );
                }
            }
            let others = code.matches("Problem::Other(").count();
            let allowed = if file == "domain/validate.rs" {
                others
            } else {
                0
            };
            assert_eq!(others, allowed, "{file} words a problem by hand");
        }
        assert!(
            fields > 40,
            "the scan found the validators' fields ({fields})"
        );
    }
}
