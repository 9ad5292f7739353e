//! Record statuses and the lifecycle of each domain as an explicit transition table.
//!
//! A transition is legal only if its `(from, to)` pair is in the table of the record's domain;
//! anything else is a [`TransitionError`] naming the record and both states. Each row also
//! says who may make the move: the grid worker on the device, or a reviewer (village secretary,
//! town or county staff) on the server. The server checks both; the device checks the first.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::codes::{Coded, Domain, coded_enum};

coded_enum!(
    /// Every status of every lifecycle. Codes are unique across domains.
    Status, "status" {
        Draft = "DRAFT", "草稿", "Draft";
        Submitted = "SUBMITTED", "已上报", "Submitted";
        Accepted = "ACCEPTED", "已受理", "Accepted";
        Assigned = "ASSIGNED", "已分派", "Assigned";
        InProgress = "IN_PROGRESS", "办理中", "In progress";
        Resolved = "RESOLVED", "已办结", "Resolved";
        Verified = "VERIFIED", "已核查", "Verified";
        Evaluated = "EVALUATED", "已评价", "Evaluated";
        Archived = "ARCHIVED", "已归档", "Archived";
        Returned = "RETURNED", "退回", "Returned";
        Escalated = "ESCALATED", "上报上级", "Escalated";
        Suspended = "SUSPENDED", "挂起", "Suspended";
        Void = "VOID", "作废", "Void";
        Replied = "REPLIED", "已答复", "Replied";
        Reported = "REPORTED", "已上报", "Reported";
        Confirmed = "CONFIRMED", "已确认", "Confirmed";
        Rectifying = "RECTIFYING", "整改中", "Rectifying";
        Rectified = "RECTIFIED", "已整改", "Rectified";
        Recheck = "RECHECK", "复查", "Recheck";
        Closed = "CLOSED", "闭环", "Closed";
        Transferred = "TRANSFERRED", "移交部门", "Transferred";
        Registered = "REGISTERED", "登记", "Registered";
        Mediating = "MEDIATING", "调解中", "Mediating";
        Success = "SUCCESS", "调解成功", "Mediated";
        Failed = "FAILED", "调解失败", "Mediation failed";
        Referred = "REFERRED", "分流", "Referred";
        FollowUp = "FOLLOW_UP", "回访", "Follow-up";
        Recording = "RECORDING", "记录中", "Recording";
        Reviewed = "REVIEWED", "已审阅", "Reviewed";
        Initial = "INITIAL", "初报", "Initial report";
        Update = "UPDATE", "续报", "Update";
        Handling = "HANDLING", "处置中", "Handling";
        Final = "FINAL", "终报", "Final report";
    }
);

/// Who may make a transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Actor {
    /// The grid worker, on the device.
    Worker,
    /// A village secretary, town or county staff, on the server.
    Reviewer,
}

/// Who a transition row admits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    Worker,
    Reviewer,
    Either,
}

impl Who {
    pub fn admits(self, actor: Actor) -> bool {
        matches!(
            (self, actor),
            (Who::Either, _) | (Who::Worker, Actor::Worker) | (Who::Reviewer, Actor::Reviewer)
        )
    }
}

/// One lifecycle: where a record starts and which moves are legal.
#[derive(Debug)]
pub struct Lifecycle {
    pub name: &'static str,
    /// The status a record has when the worker files it.
    pub initial: Status,
    pub transitions: &'static [(Status, Status, Who)],
}

use Status as S;
use Who::{Either as E, Reviewer as R, Worker as W};

/// The common event lifecycle (special populations, publicity, livelihood, other).
pub static EVENT: Lifecycle = Lifecycle {
    name: "event",
    initial: S::Submitted,
    transitions: &[
        (S::Draft, S::Submitted, W),
        (S::Draft, S::Void, W),
        (S::Submitted, S::Accepted, R),
        (S::Submitted, S::Resolved, E), // 就地化解
        (S::Submitted, S::Returned, R),
        (S::Submitted, S::Escalated, R),
        (S::Submitted, S::Void, E),
        (S::Accepted, S::Assigned, R),
        (S::Accepted, S::InProgress, R),
        (S::Accepted, S::Escalated, R),
        (S::Accepted, S::Suspended, R),
        (S::Assigned, S::InProgress, E),
        (S::Assigned, S::Returned, R),
        (S::Assigned, S::Escalated, R),
        (S::Assigned, S::Suspended, R),
        (S::InProgress, S::Resolved, E),
        (S::InProgress, S::Suspended, R),
        (S::InProgress, S::Escalated, R),
        (S::Suspended, S::InProgress, R),
        (S::Escalated, S::Accepted, R),
        (S::Returned, S::Submitted, W),
        (S::Returned, S::Void, E),
        (S::Resolved, S::Verified, R),
        (S::Resolved, S::InProgress, R),
        (S::Verified, S::Evaluated, E),
        (S::Verified, S::Archived, R),
        (S::Evaluated, S::Archived, R),
    ],
};

/// 社情民意.
pub static OPINION: Lifecycle = Lifecycle {
    name: "opinion",
    initial: S::Submitted,
    transitions: &[
        (S::Draft, S::Submitted, W),
        (S::Draft, S::Void, W),
        (S::Submitted, S::Accepted, R),
        (S::Submitted, S::Returned, R),
        (S::Submitted, S::Void, E),
        (S::Accepted, S::Assigned, R),
        (S::Accepted, S::Replied, R),
        (S::Assigned, S::Replied, R),
        (S::Replied, S::Evaluated, E),
        (S::Replied, S::Archived, R),
        (S::Evaluated, S::Archived, R),
        (S::Returned, S::Submitted, W),
        (S::Returned, S::Void, E),
    ],
};

/// 安全隐患.
pub static HAZARD: Lifecycle = Lifecycle {
    name: "hazard",
    initial: S::Reported,
    transitions: &[
        (S::Draft, S::Reported, W),
        (S::Draft, S::Void, W),
        (S::Reported, S::Confirmed, R),
        (S::Reported, S::Rectified, E), // rectified on the spot
        (S::Reported, S::Returned, R),
        (S::Reported, S::Transferred, R),
        (S::Reported, S::Void, E),
        (S::Confirmed, S::Rectifying, R),
        (S::Confirmed, S::Transferred, R),
        (S::Rectifying, S::Rectified, E),
        (S::Rectifying, S::Transferred, R),
        (S::Rectified, S::Recheck, E),
        (S::Recheck, S::Closed, R),
        (S::Recheck, S::Rectifying, R),
        (S::Transferred, S::Closed, R),
        (S::Returned, S::Reported, W),
        (S::Returned, S::Void, E),
    ],
};

/// 矛盾纠纷. The worker is often the mediator (调解员), so mediation moves are theirs too.
pub static DISPUTE: Lifecycle = Lifecycle {
    name: "dispute",
    initial: S::Registered,
    transitions: &[
        (S::Draft, S::Registered, W),
        (S::Draft, S::Void, W),
        (S::Registered, S::Accepted, R),
        (S::Registered, S::Mediating, E),
        (S::Registered, S::Success, E), // 就地化解
        (S::Registered, S::Void, E),
        (S::Accepted, S::Mediating, E),
        (S::Mediating, S::Success, E),
        (S::Mediating, S::Failed, E),
        (S::Failed, S::Mediating, E),
        (S::Failed, S::Referred, E),
        (S::Success, S::FollowUp, E),
        (S::Referred, S::FollowUp, E),
        (S::FollowUp, S::Archived, R),
    ],
};

/// 巡防日志.
pub static PATROL: Lifecycle = Lifecycle {
    name: "patrol",
    initial: S::Recording,
    transitions: &[
        (S::Recording, S::Submitted, W),
        (S::Submitted, S::Reviewed, R),
    ],
};

/// 突发事件.
pub static EMERGENCY: Lifecycle = Lifecycle {
    name: "emergency",
    initial: S::Initial,
    transitions: &[
        (S::Initial, S::Update, E),
        (S::Initial, S::Handling, E),
        (S::Initial, S::Final, E),
        (S::Update, S::Update, E), // 续报 is repeatable
        (S::Update, S::Handling, E),
        (S::Update, S::Final, E),
        (S::Handling, S::Update, E),
        (S::Handling, S::Final, E),
        (S::Final, S::Archived, R),
    ],
};

/// The 社情民意 deliberation track (三议四步), beside the opinion's status.
pub static DELIBERATION: &[(
    super::codes::DeliberationStage,
    super::codes::DeliberationStage,
)] = {
    use super::codes::DeliberationStage as D;
    &[
        (D::Proposed, D::BranchReview),
        (D::BranchReview, D::Deliberation),
        (D::BranchReview, D::Rejected),
        (D::Deliberation, D::PublicEval),
    ]
};

/// The lifecycle of a domain.
pub fn lifecycle(domain: Domain) -> &'static Lifecycle {
    match domain {
        Domain::Opinion => &OPINION,
        Domain::Hazard => &HAZARD,
        Domain::Dispute => &DISPUTE,
        Domain::Patrol => &PATROL,
        Domain::Emergency => &EMERGENCY,
        Domain::SpecialPop | Domain::Publicity | Domain::Livelihood | Domain::Other => &EVENT,
    }
}

/// An illegal status change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error(
        "{domain} record {record}: cannot go from {from} ({from_zh}) to {to} ({to_zh}) in the {lifecycle} lifecycle",
        domain = domain.code(), from_zh = from.zh(), to_zh = to.zh()
    )]
    Illegal {
        record: Uuid,
        domain: Domain,
        lifecycle: &'static str,
        from: Status,
        to: Status,
    },
    #[error(
        "{domain} record {record}: going from {from} to {to} is not the {actor:?}'s to do",
        domain = domain.code()
    )]
    NotPermitted {
        record: Uuid,
        domain: Domain,
        from: Status,
        to: Status,
        actor: Actor,
    },
}

impl TransitionError {
    /// The message in `lang`: what cannot be done, and what to do instead.
    pub fn text(&self, lang: super::codes::Lang) -> String {
        if lang == super::codes::Lang::En {
            return self.to_string();
        }
        match self {
            TransitionError::Illegal {
                domain, from, to, ..
            } => format!(
                "这条{}现为「{}」，不能直接改为「{}」；请刷新后按页面上可选的办理步骤操作",
                domain.zh(),
                from.zh(),
                to.zh()
            ),
            TransitionError::NotPermitted {
                domain,
                from,
                to,
                actor,
                ..
            } => format!(
                "这条{}从「{}」改为「{}」应由{}办理",
                domain.zh(),
                from.zh(),
                to.zh(),
                match actor {
                    Actor::Worker => "县、镇或村里的审核人员",
                    Actor::Reviewer => "网格员在手机上",
                }
            ),
        }
    }
}

impl Lifecycle {
    /// All statuses that occur in this lifecycle.
    pub fn statuses(&self) -> Vec<Status> {
        let mut v: Vec<Status> = std::iter::once(self.initial)
            .chain(self.transitions.iter().flat_map(|(a, b, _)| [*a, *b]))
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// The row for `from → to`, if legal.
    pub fn find(&self, from: Status, to: Status) -> Option<Who> {
        self.transitions
            .iter()
            .find(|(a, b, _)| *a == from && *b == to)
            .map(|(_, _, w)| *w)
    }

    /// A status with no way out: the record's life is over.
    pub fn is_terminal(&self, status: Status) -> bool {
        !self.transitions.iter().any(|(a, _, _)| *a == status)
    }

    /// Filed, and not yet at its end: what "open records" means.
    pub fn is_open(&self, status: Status) -> bool {
        status != Status::Draft && !self.is_terminal(status)
    }
}

/// Checks `from → to` for a record of `domain` made by `actor`.
pub fn check_transition(
    record: Uuid,
    domain: Domain,
    from: Status,
    to: Status,
    actor: Actor,
) -> Result<(), TransitionError> {
    let lc = lifecycle(domain);
    match lc.find(from, to) {
        None => Err(TransitionError::Illegal {
            record,
            domain,
            lifecycle: lc.name,
            from,
            to,
        }),
        Some(who) if !who.admits(actor) => Err(TransitionError::NotPermitted {
            record,
            domain,
            from,
            to,
            actor,
        }),
        Some(_) => Ok(()),
    }
}

/// The moves the grid worker may make on a record of `domain` that is now `from`: every row of
/// the domain's lifecycle that starts at `from` and admits the worker, in table order.
pub fn worker_moves(domain: Domain, from: Status) -> Vec<Status> {
    lifecycle(domain)
        .transitions
        .iter()
        .filter(|(a, _, who)| *a == from && who.admits(Actor::Worker))
        .map(|(_, b, _)| *b)
        .collect()
}

/// An out-of-order step of the 三议四步 deliberation track.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("deliberation cannot go from {} to {}", .from.map(|f| f.code()).unwrap_or("nothing"), .to.code())]
pub struct DeliberationError {
    pub from: Option<super::codes::DeliberationStage>,
    pub to: super::codes::DeliberationStage,
}

impl DeliberationError {
    /// The message in `lang`: which stage comes next instead.
    pub fn text(&self, lang: super::codes::Lang) -> String {
        if lang == super::codes::Lang::En {
            return self.to_string();
        }
        let next: Vec<&str> = next_deliberation(self.from)
            .iter()
            .map(|d| d.zh())
            .collect();
        let now = self.from.map(|f| f.zh()).unwrap_or("尚未开始");
        if next.is_empty() {
            format!("三议四步已到「{now}」，不能再改为「{}」", self.to.zh())
        } else {
            format!(
                "三议四步现为「{now}」，不能跳到「{}」；下一步请选「{}」",
                self.to.zh(),
                next.join("」或「")
            )
        }
    }
}

/// The deliberation stages that may follow `from` (`None`: not started, so 群众提).
pub fn next_deliberation(
    from: Option<super::codes::DeliberationStage>,
) -> Vec<super::codes::DeliberationStage> {
    match from {
        None => vec![super::codes::DeliberationStage::Proposed],
        Some(f) => DELIBERATION
            .iter()
            .filter(|(a, _)| *a == f)
            .map(|(_, b)| *b)
            .collect(),
    }
}

/// Checks one step of the deliberation track: only the next stage by [`DELIBERATION`].
pub fn check_deliberation(
    from: Option<super::codes::DeliberationStage>,
    to: super::codes::DeliberationStage,
) -> Result<(), DeliberationError> {
    if next_deliberation(from).contains(&to) {
        Ok(())
    } else {
        Err(DeliberationError { from, to })
    }
}

/// The statuses that count as open for any domain (for queries across domains).
pub fn open_statuses() -> Vec<Status> {
    let mut v: Vec<Status> = Domain::ALL
        .iter()
        .flat_map(|d| {
            let lc = lifecycle(*d);
            lc.statuses().into_iter().filter(|s| lc.is_open(*s))
        })
        .collect();
    v.sort();
    v.dedup();
    v
}

/// The moves an assignee (the department or person a record is dispatched to) may make on
/// it: take it up, finish it (办结, 已整改) or answer an opinion. Each is also a reviewer's
/// move of the record's lifecycle, checked as one.
pub fn assignee_may(from: Status, to: Status) -> bool {
    matches!(
        (from, to),
        (Status::Assigned, Status::InProgress)
            | (Status::InProgress, Status::Resolved)
            | (Status::Assigned, Status::Replied)
            | (Status::Rectifying, Status::Rectified)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ALL_LIFECYCLES: [&Lifecycle; 6] =
        [&EVENT, &OPINION, &HAZARD, &DISPUTE, &PATROL, &EMERGENCY];

    fn domain_of(lc: &Lifecycle) -> Domain {
        match lc.name {
            "event" => Domain::Other,
            "opinion" => Domain::Opinion,
            "hazard" => Domain::Hazard,
            "dispute" => Domain::Dispute,
            "patrol" => Domain::Patrol,
            _ => Domain::Emergency,
        }
    }

    #[test]
    fn every_legal_transition_is_accepted_for_the_actor_it_names() {
        let mut n = 0;
        for lc in ALL_LIFECYCLES {
            let d = domain_of(lc);
            for (from, to, who) in lc.transitions {
                let id = Uuid::nil();
                match who {
                    Who::Worker => {
                        check_transition(id, d, *from, *to, Actor::Worker).unwrap();
                        assert!(check_transition(id, d, *from, *to, Actor::Reviewer).is_err());
                    }
                    Who::Reviewer => {
                        check_transition(id, d, *from, *to, Actor::Reviewer).unwrap();
                        assert!(matches!(
                            check_transition(id, d, *from, *to, Actor::Worker),
                            Err(TransitionError::NotPermitted { .. })
                        ));
                    }
                    Who::Either => {
                        check_transition(id, d, *from, *to, Actor::Worker).unwrap();
                        check_transition(id, d, *from, *to, Actor::Reviewer).unwrap();
                    }
                }
                n += 1;
            }
        }
        assert!(n >= 80, "only {n} transitions checked");
    }

    #[test]
    fn every_status_of_a_lifecycle_is_reachable_from_its_initial_state_or_draft() {
        for lc in ALL_LIFECYCLES {
            let mut seen = vec![lc.initial, Status::Draft];
            loop {
                let before = seen.len();
                for (a, b, _) in lc.transitions {
                    if seen.contains(a) && !seen.contains(b) {
                        seen.push(*b);
                    }
                }
                if seen.len() == before {
                    break;
                }
            }
            for s in lc.statuses() {
                assert!(seen.contains(&s), "{} cannot reach {s}", lc.name);
            }
        }
    }

    #[test]
    fn the_error_names_the_record_and_both_states() {
        let id = Uuid::now_v7();
        let err = check_transition(
            id,
            Domain::Hazard,
            Status::Closed,
            Status::Reported,
            Actor::Reviewer,
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(&id.to_string()), "{msg}");
        assert!(msg.contains("CLOSED") && msg.contains("REPORTED"), "{msg}");
        assert!(msg.contains("闭环"), "{msg}");
    }

    #[test]
    fn on_site_resolution_and_recheck_loop_exist() {
        let id = Uuid::nil();
        check_transition(
            id,
            Domain::Livelihood,
            S::Submitted,
            S::Resolved,
            Actor::Worker,
        )
        .unwrap();
        check_transition(
            id,
            Domain::Hazard,
            S::Recheck,
            S::Rectifying,
            Actor::Reviewer,
        )
        .unwrap();
        check_transition(id, Domain::Emergency, S::Update, S::Update, Actor::Worker).unwrap();
    }

    #[test]
    fn open_and_terminal() {
        assert!(HAZARD.is_terminal(S::Closed));
        assert!(HAZARD.is_open(S::Reported));
        assert!(!EVENT.is_open(S::Draft));
        assert!(!EVENT.is_open(S::Archived));
        assert!(open_statuses().contains(&S::Rectifying));
        assert!(!open_statuses().contains(&S::Void));
    }

    #[test]
    fn the_worker_is_offered_exactly_the_rows_that_admit_the_worker() {
        assert_eq!(
            worker_moves(Domain::Livelihood, S::Submitted),
            vec![S::Resolved, S::Void]
        );
        assert_eq!(worker_moves(Domain::Livelihood, S::Accepted), vec![]);
        assert_eq!(
            worker_moves(Domain::Opinion, S::Returned),
            vec![S::Submitted, S::Void]
        );
        assert_eq!(
            worker_moves(Domain::Hazard, S::Reported),
            vec![S::Rectified, S::Void]
        );
        assert_eq!(
            worker_moves(Domain::Hazard, S::Rectifying),
            vec![S::Rectified]
        );
        assert_eq!(worker_moves(Domain::Hazard, S::Recheck), vec![]);
        assert_eq!(
            worker_moves(Domain::Dispute, S::Failed),
            vec![S::Mediating, S::Referred]
        );
        assert_eq!(
            worker_moves(Domain::Emergency, S::Update),
            vec![S::Update, S::Handling, S::Final]
        );
        // Every move offered passes the worker's check; no other status does.
        for d in Domain::ALL {
            for from in Status::ALL {
                let moves = worker_moves(*d, *from);
                for to in Status::ALL {
                    let ok = check_transition(Uuid::nil(), *d, *from, *to, Actor::Worker).is_ok();
                    assert_eq!(ok, moves.contains(to), "{d:?} {from} -> {to}");
                }
            }
        }
    }

    #[test]
    fn deliberation_goes_in_order_and_says_what_comes_next() {
        use crate::domain::codes::{DeliberationStage as D, Lang};
        check_deliberation(None, D::Proposed).unwrap();
        check_deliberation(Some(D::Proposed), D::BranchReview).unwrap();
        check_deliberation(Some(D::BranchReview), D::Rejected).unwrap();
        check_deliberation(Some(D::BranchReview), D::Deliberation).unwrap();
        check_deliberation(Some(D::Deliberation), D::PublicEval).unwrap();
        let e = check_deliberation(Some(D::Proposed), D::PublicEval).unwrap_err();
        let zh = e.text(Lang::Zh);
        assert!(
            zh.contains("群众提") && zh.contains("群众评") && zh.contains("支部审"),
            "{zh}"
        );
        assert!(check_deliberation(None, D::Deliberation).is_err());
        let done = check_deliberation(Some(D::Rejected), D::Deliberation).unwrap_err();
        assert!(
            done.text(Lang::Zh).contains("不能再改为"),
            "{}",
            done.text(Lang::Zh)
        );
    }

    fn any_status() -> impl Strategy<Value = Status> {
        proptest::sample::select(Status::ALL.to_vec())
    }

    fn any_domain() -> impl Strategy<Value = Domain> {
        proptest::sample::select(Domain::ALL.to_vec())
    }

    proptest! {
        /// Any pair not in a domain's table is refused, with an error naming both states.
        #[test]
        fn pairs_outside_the_table_are_refused(d in any_domain(), from in any_status(), to in any_status(), worker in any::<bool>()) {
            let actor = if worker { Actor::Worker } else { Actor::Reviewer };
            let lc = lifecycle(d);
            let res = check_transition(Uuid::nil(), d, from, to, actor);
            match lc.find(from, to) {
                None => {
                    let err = res.unwrap_err();
                    let is_illegal = matches!(err, TransitionError::Illegal { .. });
                    prop_assert!(is_illegal);
                    let msg = err.to_string();
                    prop_assert!(msg.contains(from.code()) && msg.contains(to.code()));
                }
                Some(who) => prop_assert_eq!(res.is_ok(), who.admits(actor)),
            }
        }
    }

    #[test]
    fn an_assignee_only_takes_up_and_finishes_what_it_was_given() {
        assert!(assignee_may(S::Assigned, S::InProgress));
        assert!(assignee_may(S::InProgress, S::Resolved));
        assert!(assignee_may(S::Rectifying, S::Rectified));
        assert!(!assignee_may(S::Resolved, S::Verified));
        assert!(!assignee_may(S::Assigned, S::Returned));
        assert!(!assignee_may(S::Submitted, S::Accepted));
    }
}
