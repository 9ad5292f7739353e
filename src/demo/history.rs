//! One grid's history: event records of every domain, each walked through its lifecycle as
//! workers and the county would, with the replies, mediation sessions, patrol tracks and
//! emergency reports they bring.

use super::population::GridGen;
use super::*;

impl GridGen<'_> {
    /// Walks a record through its lifecycle from its initial state, as workers and the county
    /// would, recording each step; returns the final status.
    fn walk(&mut self, id: Uuid, domain: Domain, created: DateTime<Utc>, steps: usize) -> Status {
        let lc = lifecycle(domain);
        let mut s = lc.initial;
        let mut t = created;
        for _ in 0..steps {
            let options: Vec<_> = lc
                .transitions
                .iter()
                .filter(|(a, b, _)| {
                    *a == s && !matches!(b, Status::Void | Status::Returned | Status::Draft)
                })
                .collect();
            let Some((_, to, who)) = options.choose(&mut self.rng).copied() else {
                break;
            };
            t += Duration::minutes(self.rng.random_range(30..4320));
            if t >= self.now {
                break;
            }
            let actor = match who {
                Who::Reviewer => "县综治中心".to_owned(),
                _ => self.g.worker.username.clone(),
            };
            self.out.history.push(StatusChange {
                record_id: id,
                from: s,
                to: *to,
                at: t,
                actor,
                note: None,
            });
            s = *to;
            if matches!(
                s,
                Status::Accepted | Status::Confirmed | Status::Replied | Status::Assigned
            ) && self.rng.random_bool(0.5)
            {
                let reply_at = t + Duration::minutes(5);
                self.out.replies.push(Reply {
                    id: id_at(&mut self.rng, reply_at),
                    record_id: id,
                    author: "县综治中心".into(),
                    text: [
                        "已受理，请网格员持续跟进",
                        "已转交相关部门办理",
                        "已安排人员现场核实",
                        "问题已答复群众",
                    ]
                    .choose(&mut self.rng)
                    .expect("non-empty")
                    .to_string(),
                    created_at: reply_at,
                });
            }
        }
        s
    }

    fn common(&mut self, domain: Domain, created: DateTime<Utc>) -> Common {
        let loc = self.point(0.02);
        Common {
            id: id_at(&mut self.rng, created),
            grid_id: self.g.grid.id,
            author: self.g.worker.username.clone(),
            created_at: created,
            status: lifecycle(domain).initial,
            urgency: match self.rng.random_range(0..100) {
                0..85 => Urgency::Normal,
                85..97 => Urgency::Urgent,
                _ => Urgency::Major,
            },
            location: Some(loc),
            photos: Vec::new(),
            patrol_id: None,
            supervision: Default::default(),
            household_id: None,
        }
    }

    pub(super) fn records(&mut self, n: usize) {
        for _ in 0..n {
            let created = self.at(150);
            let steps = self.rng.random_range(0..7);
            let roll = self.rng.random_range(0..100);
            let rec = match roll {
                0..30 => {
                    let (cat, text) = *names::HAZARD_TEXTS
                        .choose(&mut self.rng)
                        .expect("non-empty");
                    let mut c = self.common(Domain::Hazard, created);
                    c.status = self.walk(c.id, Domain::Hazard, created, steps);
                    AnyRecord::Hazard(Hazard {
                        common: c,
                        category: HazardCategory::from_code(cat).expect("demo codes are valid"),
                        severity: *[
                            Severity::Low,
                            Severity::Low,
                            Severity::Medium,
                            Severity::High,
                        ]
                        .choose(&mut self.rng)
                        .expect("non-empty"),
                        description: text.to_owned(),
                        place: String::new(),
                        owner: None,
                        due_date: None,
                    })
                }
                30..55 => {
                    let (cat, text) = *names::OPINION_TEXTS
                        .choose(&mut self.rng)
                        .expect("non-empty");
                    let mut c = self.common(Domain::Opinion, created);
                    c.status = self.walk(c.id, Domain::Opinion, created, steps);
                    let deliberation = self.rng.random_bool(0.2).then(|| {
                        *[
                            DeliberationStage::Proposed,
                            DeliberationStage::BranchReview,
                            DeliberationStage::Deliberation,
                            DeliberationStage::PublicEval,
                        ]
                        .choose(&mut self.rng)
                        .expect("non-empty")
                    });
                    AnyRecord::Opinion(Opinion {
                        common: c,
                        category: OpinionCategory::from_code(cat).expect("demo codes are valid"),
                        content: text.to_owned(),
                        raised_by: None,
                        deliberation,
                        deliberation_notes: None,
                    })
                }
                55..70 => self.dispute(created, steps),
                70..85 => self.patrol(created),
                85..98 => {
                    let domain = *[
                        Domain::SpecialPop,
                        Domain::Livelihood,
                        Domain::Publicity,
                        Domain::Other,
                    ]
                    .choose(&mut self.rng)
                    .expect("non-empty");
                    let mut c = self.common(domain, created);
                    c.status = self.walk(c.id, domain, created, steps);
                    let (title, content) = match domain {
                        Domain::SpecialPop => {
                            ("独居老人关爱", "上门查看老人生活情况，协助联系村医")
                        }
                        Domain::Livelihood => {
                            ("代办养老保险认证", "为行动不便老人代办养老金资格认证")
                        }
                        Domain::Publicity => ("防诈骗宣传", "在村民小组会上宣传防范电信诈骗"),
                        _ => ("其他事项", "协助村民办理事务"),
                    };
                    let mut ev = Event::new(c, domain, title.into(), content.into());
                    // What a new record of its domain must name (`Event::validate_new`), with
                    // no draw of the random stream: the grid's first person with a care tag.
                    match domain {
                        Domain::SpecialPop => {
                            ev.served_person_id = self
                                .out
                                .people
                                .iter()
                                .find(|p| p.tags.iter().any(|t| !t.is_managed()))
                                .or(self.out.people.first())
                                .map(|p| p.id);
                            ev.service = Some(ServiceKind::CareVisit);
                        }
                        Domain::Livelihood => ev.matter = Some(LivelihoodMatter::Insurance),
                        Domain::Publicity => {
                            ev.place = Some("村民小组会场".into());
                            ev.audience = Some(30);
                        }
                        _ => {}
                    }
                    AnyRecord::Event(ev)
                }
                _ => self.emergency(created, steps),
            };
            self.out.records.push(rec);
        }
    }

    fn dispute(&mut self, created: DateTime<Utc>, steps: usize) -> AnyRecord {
        let (cat, text) = *names::DISPUTE_TEXTS
            .choose(&mut self.rng)
            .expect("non-empty");
        let mut c = self.common(Domain::Dispute, created);
        c.status = self.walk(c.id, Domain::Dispute, created, steps);
        let parties = (0..2)
            .map(|i| {
                let p = self
                    .out
                    .people
                    .choose(&mut self.rng)
                    .expect("a grid has people");
                Party {
                    name: p.name.clone(),
                    role: if i == 0 {
                        PartyRole::Applicant
                    } else {
                        PartyRole::Respondent
                    },
                    phone: p.phone.clone(),
                    person_id: Some(p.id),
                }
            })
            .collect();
        let mediated = self
            .out
            .history
            .iter()
            .any(|h| h.record_id == c.id && h.to == Status::Mediating);
        if mediated {
            for k in 0..self.rng.random_range(1..=3) {
                let at = created + Duration::days(k + 1);
                if at >= self.now {
                    break;
                }
                self.out.sessions.push(MediationSession {
                    id: id_at(&mut self.rng, at),
                    dispute_id: c.id,
                    held_on: crate::domain::cst::today(at),
                    method: *MediationMethod::ALL
                        .choose(&mut self.rng)
                        .expect("non-empty"),
                    participants: vec![self.g.worker.name.clone(), "村调解委员会".into()],
                    notes: "释法明理，听取双方诉求".into(),
                    agreement: (k > 0).then(|| "双方达成口头协议".to_owned()),
                    author: self.g.worker.username.clone(),
                    created_at: at,
                });
            }
        }
        let follow_up = matches!(c.status, Status::FollowUp | Status::Archived).then(|| FollowUp {
            on: (created + Duration::days(10)).date_naive().min(self.today),
            satisfaction: *[
                Satisfaction::Satisfied,
                Satisfaction::Satisfied,
                Satisfaction::Basic,
                Satisfaction::Unsatisfied,
            ]
            .choose(&mut self.rng)
            .expect("non-empty"),
            notes: String::new(),
        });
        AnyRecord::Dispute(Dispute {
            common: c,
            category: DisputeCategory::from_code(cat).expect("demo codes are valid"),
            summary: text.to_owned(),
            parties,
            follow_up,
        })
    }

    fn patrol(&mut self, started: DateTime<Utc>) -> AnyRecord {
        let mut c = self.common(Domain::Patrol, started);
        let n = self.rng.random_range(20..60);
        let (mut u, mut v) = (
            self.rng.random_range(0.1..0.9),
            self.rng.random_range(0.1..0.9),
        );
        let mut points = Vec::with_capacity(n);
        let mut t = started;
        for _ in 0..n {
            u = (u + self.rng.random_range(-0.04..0.04_f64)).clamp(0.02, 0.98);
            v = (v + self.rng.random_range(-0.04..0.04_f64)).clamp(0.02, 0.98);
            let p = round6(in_quad(&self.g.quad, u, v));
            points.push(TrackPoint {
                at: t,
                lon: p.x,
                lat: p.y,
                accuracy_m: Some(self.rng.random_range(3.0..15.0_f64).round()),
            });
            t += Duration::seconds(self.rng.random_range(30..120));
        }
        let ended = points.last().map(|p| p.at);
        let distance_m = (track_length_m(&points) * 10.0).round() / 10.0;
        c.location = points.first().map(|p| GeoPoint {
            lon: p.lon,
            lat: p.lat,
            accuracy_m: p.accuracy_m,
        });
        c.status = self.walk(c.id, Domain::Patrol, started, 2);
        if c.status == Status::Recording {
            // Only a patrol running now may still be recording; older ones were submitted.
            c.status = Status::Submitted;
            self.out.history.push(StatusChange {
                record_id: c.id,
                from: Status::Recording,
                to: Status::Submitted,
                at: ended.unwrap_or(started),
                actor: self.g.worker.username.clone(),
                note: None,
            });
        }
        self.out.tracks.push(PatrolPoints {
            id: id_at(&mut self.rng, started),
            patrol_id: c.id,
            points,
        });
        AnyRecord::Patrol(Patrol {
            common: c,
            started_at: started,
            ended_at: ended,
            notes: names::PATROL_NOTES
                .choose(&mut self.rng)
                .expect("non-empty")
                .to_string(),
            distance_m,
        })
    }

    fn emergency(&mut self, created: DateTime<Utc>, steps: usize) -> AnyRecord {
        let mut c = self.common(Domain::Emergency, created);
        c.urgency = Urgency::Urgent;
        c.status = self.walk(c.id, Domain::Emergency, created, steps);
        let mut stages = vec![(ReportStage::Initial, created)];
        for h in self.out.history.iter().filter(|h| h.record_id == c.id) {
            match h.to {
                Status::Update => stages.push((ReportStage::Update, h.at)),
                Status::Final => stages.push((ReportStage::Final, h.at)),
                _ => {}
            }
        }
        for (stage, at) in stages {
            self.out.reports.push(EmergencyReport {
                id: id_at(&mut self.rng, at),
                emergency_id: c.id,
                stage,
                text: match stage {
                    ReportStage::Initial => "暴雨致村道塌方，暂无人员伤亡，已设置警戒".into(),
                    ReportStage::Update => "抢修队伍已到场，转移群众3户".into(),
                    ReportStage::Final => "道路已抢通，转移群众已返回".into(),
                },
                casualties: Some(0),
                author: self.g.worker.username.clone(),
                created_at: at,
            });
        }
        AnyRecord::Emergency(Emergency {
            common: c,
            category: EmergencyCategory::Natural,
            level: EmergencyLevel::Iv,
            title: "暴雨致村道塌方".into(),
            occurred_at: created - Duration::minutes(30),
        })
    }
}
