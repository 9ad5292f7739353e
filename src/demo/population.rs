//! One grid's people: houses, households of the county's usual kinds with their members and
//! tags, and the visits made to them.

use super::*;

/// Makes one grid's population and history from the grid's own random stream: every draw
/// in a fixed order, so the same seed always gives the same grid.
pub(super) struct GridGen<'a> {
    pub(super) county: &'a County,
    pub(super) g: &'a DemoGrid,
    pub(super) rng: ChaCha8Rng,
    pub(super) today: NaiveDate,
    pub(super) now: DateTime<Utc>,
    pub(super) out: Scope,
}

impl<'a> GridGen<'a> {
    pub(super) fn new(county: &'a County, grid: usize) -> Self {
        let today = county.spec.today;
        GridGen {
            county,
            g: &county.grids[grid],
            rng: rng_for(county.spec.seed, grid as u64),
            today,
            now: today
                .and_time(NaiveTime::from_hms_opt(8, 0, 0).expect("valid"))
                .and_utc(),
            out: Scope::default(),
        }
    }

    pub(super) fn at(&mut self, days_back_max: i64) -> DateTime<Utc> {
        let secs = self.rng.random_range(3600..days_back_max.max(1) * 86_400);
        self.now - Duration::seconds(secs)
    }

    pub(super) fn point(&mut self, margin: f64) -> GeoPoint {
        let (u, v) = (
            self.rng.random_range(margin..1.0 - margin),
            self.rng.random_range(margin..1.0 - margin),
        );
        let c = round6(in_quad(&self.g.quad, u, v));
        GeoPoint {
            lon: c.x,
            lat: c.y,
            accuracy_m: Some(self.rng.random_range(3.0..25.0_f64).round()),
        }
    }

    pub(super) fn run(mut self) -> Scope {
        let (lo, hi) = self.county.spec.households_per_grid;
        let n = self.rng.random_range(lo..=hi);
        let groups = (n / 40).max(1);
        for i in 0..n {
            self.household(i, groups);
        }
        // About a third of the history is event records, the rest visits.
        let target = (n as f64 * self.county.spec.history_per_household).round() as usize;
        let records = (target as f64 * 0.35).round() as usize;
        self.visits(target - records);
        self.records(records);
        self.out
    }

    fn person(
        &mut self,
        household: Uuid,
        relation: Relation,
        sex: Sex,
        age: u32,
        surname: Option<&str>,
    ) -> Person {
        let birth = self.today - Duration::days(age as i64 * 365 + self.rng.random_range(0..365));
        let name = match surname {
            Some(s) => format!("{s}{}", given(&mut self.rng, sex)),
            None => person_name(&mut self.rng, sex),
        };
        let floating = self.rng.random_bool(0.04);
        let region = if floating {
            names::OTHER_REGIONS
                .choose(&mut self.rng)
                .expect("non-empty")
                .to_string()
        } else {
            names::COUNTY_CODE.to_owned()
        };
        let id_number = make_id_number(&mut self.rng, &region, birth, sex);
        let phone = (age >= 16 && self.rng.random_bool(0.8)).then(|| {
            format!(
                "{}{:08}",
                names::MOBILE_PREFIXES
                    .choose(&mut self.rng)
                    .expect("non-empty"),
                self.rng.random_range(0..100_000_000u32)
            )
        });
        let created = self.now - Duration::days(400);
        Person {
            id: id_at(&mut self.rng, created),
            household_id: household,
            name,
            sex,
            birth_date: Some(birth),
            id_type: IdType::ResidentCard,
            id_number: Some(id_number),
            phone,
            person_type: if floating {
                PersonType::Floating
            } else {
                PersonType::Household
            },
            residence: if floating {
                ResidenceStatus::PersonOnly
            } else {
                ResidenceStatus::Both
            },
            status: PersonStatus::Active,
            relation,
            tags: Vec::new(),
            status_on: None,
            origin: None,
        }
    }

    /// A house and the household living in it, of one of the county's usual kinds, with
    /// their members' tags.
    fn household(&mut self, i: u32, groups: u32) {
        let created = self.now - Duration::days(400);
        let house = self.house(i, groups, created);
        let hid = id_at(&mut self.rng, created);
        let family = surname(&mut self.rng).to_owned();
        let kind = self.rng.random_range(0..100);
        let head_sex = if self.rng.random_bool(0.8) {
            Sex::Male
        } else {
            Sex::Female
        };
        let mut members = match kind {
            0..15 => self.elder_alone(hid, head_sex, &family),
            15..35 => self.elderly_couple(hid, head_sex, &family),
            35..80 => self.family(hid, head_sex, &family),
            _ => self.grandparents_with_grandchildren(hid, head_sex, &family),
        };
        self.tag_members(&mut members);
        let head = members[0].id;
        self.out.houses.push(house.clone());
        self.out.households.push(Household {
            id: hid,
            grid_id: self.g.grid.id,
            house_id: Some(house.id),
            head_id: Some(head),
            address: house.address,
            location: house.location,
        });
        self.out.people.extend(members);
    }

    /// House `i` of the grid, in its village's group (组), somewhere inside the grid.
    fn house(&mut self, i: u32, groups: u32, created: DateTime<Utc>) -> House {
        let loc = self.point(0.02);
        let group = i % groups + 1;
        let village = &self.county.villages[self.g.village].name;
        let number = format!("{}", i + 1);
        let group =
            (self.g.grid.code.as_str()[12..].parse::<u32>().unwrap_or(1) - 1) * groups + group;
        let address = format!("{village}{group}组{number}号");
        House {
            id: id_at(&mut self.rng, created),
            grid_id: self.g.grid.id,
            number,
            address,
            use_: match self.rng.random_range(0..100) {
                0..85 => HouseUse::OwnerOccupied,
                85..93 => HouseUse::Rental,
                93..97 => HouseUse::Vacant,
                _ => HouseUse::Other,
            },
            location: Some(loc),
        }
    }

    /// An elder living alone.
    fn elder_alone(&mut self, hid: Uuid, head_sex: Sex, family: &str) -> Vec<Person> {
        let age = self.rng.random_range(65..95);
        let mut p = self.person(hid, Relation::Head, head_sex, age, Some(family));
        if self.rng.random_bool(0.8) {
            p.tags.push(Tag::ElderlyAlone);
        }
        vec![p]
    }

    /// An elderly couple whose children work away.
    fn elderly_couple(&mut self, hid: Uuid, head_sex: Sex, family: &str) -> Vec<Person> {
        let mut members = Vec::new();
        let age = self.rng.random_range(60..88);
        members.push(self.person(hid, Relation::Head, head_sex, age, Some(family)));
        let age2 = age.saturating_sub(self.rng.random_range(0..5)).max(58);
        members.push(self.person(hid, Relation::Spouse, other_sex(head_sex), age2, None));
        if self.rng.random_bool(0.35) {
            for m in &mut members {
                m.tags.push(Tag::LeftBehindAdult);
            }
        }
        members
    }

    /// A family: head, spouse, children, sometimes a grandparent.
    fn family(&mut self, hid: Uuid, head_sex: Sex, family: &str) -> Vec<Person> {
        let mut members = Vec::new();
        let age = self.rng.random_range(28..58);
        members.push(self.person(hid, Relation::Head, head_sex, age, Some(family)));
        members.push(self.person(
            hid,
            Relation::Spouse,
            other_sex(head_sex),
            age.saturating_sub(2),
            None,
        ));
        for _ in 0..self.rng.random_range(1..=3) {
            let s = rng_sex(&mut self.rng);
            let ca = self.rng.random_range(0..(age - 20).max(1));
            let rel = if s == Sex::Male {
                Relation::Son
            } else {
                Relation::Daughter
            };
            members.push(self.person(hid, rel, s, ca, Some(family)));
        }
        if self.rng.random_bool(0.3) {
            let ga = (age + self.rng.random_range(22..32)).min(99);
            let gs = rng_sex(&mut self.rng);
            members.push(self.person(hid, Relation::Parent, gs, ga, Some(family)));
        }
        members
    }

    /// Grandparents with grandchildren; the parents work in the city.
    fn grandparents_with_grandchildren(
        &mut self,
        hid: Uuid,
        head_sex: Sex,
        family: &str,
    ) -> Vec<Person> {
        let mut members = Vec::new();
        let age = self.rng.random_range(55..80);
        members.push(self.person(hid, Relation::Head, head_sex, age, Some(family)));
        members.push(self.person(
            hid,
            Relation::Spouse,
            other_sex(head_sex),
            age.saturating_sub(3),
            None,
        ));
        for rel in [Relation::Son, Relation::ChildInLaw] {
            let s = if rel == Relation::Son {
                Sex::Male
            } else {
                Sex::Female
            };
            let mut p = self.person(hid, rel, s, age - 26, Some(family));
            p.residence = ResidenceStatus::HukouOnly;
            members.push(p);
        }
        for _ in 0..self.rng.random_range(1..=2) {
            let s = rng_sex(&mut self.rng);
            let ca = self.rng.random_range(2..15);
            let mut c = self.person(hid, Relation::Grandchild, s, ca, Some(family));
            if self.rng.random_bool(0.7) {
                c.tags.push(Tag::LeftBehindChild);
            }
            members.push(c);
        }
        members
    }

    /// Tags that any household's members may have: high age, and now and then a disability,
    /// poverty, a veteran, someone the county keeps an eye on; sometimes a low income.
    fn tag_members(&mut self, members: &mut [Person]) {
        for m in members.iter_mut() {
            let age = m.age(self.today).unwrap_or(0);
            if age >= 80 {
                m.tags.push(Tag::ElderlyHighAge);
            }
            let roll = self.rng.random_range(0..10_000);
            let extra = match roll {
                0..200 => Some(Tag::Disabled),
                200..230 => Some(Tag::ExtremePoverty),
                230..330 if m.sex == Sex::Male && age >= 45 => Some(Tag::VeteranEntitled),
                330..345 if age >= 18 => Some(Tag::CommunityCorrection),
                345..365 if age >= 18 => Some(Tag::ReleasedPrisoner),
                365..395 if age >= 16 => Some(Tag::SevereMentalDisorder),
                395..405 if age >= 18 => Some(Tag::DrugUser),
                405..415 if age >= 18 => Some(Tag::KeyPetitioner),
                _ => None,
            };
            if let Some(t) = extra
                && !m.tags.contains(&t)
            {
                m.tags.push(t);
            }
        }
        if self.rng.random_bool(0.04) {
            members[0].tags.push(Tag::LowIncome);
        }
    }

    fn visits(&mut self, budget: usize) {
        let mut by_household: std::collections::HashMap<Uuid, u32> = Default::default();
        for p in &self.out.people {
            let d = p
                .tags
                .iter()
                .map(|t| t.default_cadence_days())
                .min()
                .unwrap_or(DEFAULT_HOUSEHOLD_CADENCE_DAYS);
            let e = by_household
                .entry(p.household_id)
                .or_insert(DEFAULT_HOUSEHOLD_CADENCE_DAYS);
            *e = (*e).min(d);
        }
        let households: Vec<(Uuid, Option<GeoPoint>)> = self
            .out
            .households
            .iter()
            .map(|h| (h.id, h.location))
            .collect();
        // Up to 180 days of history; a visit roughly every cadence, some late.
        let max_per = (budget / households.len().max(1)) as i64 + 1;
        for (hid, loc) in households {
            let cadence = by_household[&hid] as i64;
            let mut back = self.rng.random_range(0..(cadence * 14 / 10).max(2));
            let mut made = 0;
            while back < 180 && made < max_per {
                let on = self.today - Duration::days(back);
                let created = on
                    .and_time(NaiveTime::from_hms_opt(9, 0, 0).expect("valid"))
                    .and_utc()
                    + Duration::minutes(self.rng.random_range(0..480));
                let purpose = *[
                    VisitPurpose::Routine,
                    VisitPurpose::Routine,
                    VisitPurpose::Care,
                    VisitPurpose::Verify,
                    VisitPurpose::Publicity,
                ]
                .choose(&mut self.rng)
                .expect("non-empty");
                self.out.visits.push(Visit {
                    id: id_at(&mut self.rng, created),
                    household_id: hid,
                    grid_id: self.g.grid.id,
                    author: self.g.worker.username.clone(),
                    visited_on: on,
                    purpose,
                    notes: [
                        "家中一切正常",
                        "了解老人身体状况，叮嘱注意保暖",
                        "宣传防诈骗知识",
                        "核实家庭成员信息",
                    ]
                    .choose(&mut self.rng)
                    .expect("non-empty")
                    .to_string(),
                    next_due: None,
                    location: loc,
                    created_at: created,
                });
                made += 1;
                back += cadence + self.rng.random_range(-(cadence / 5)..=(cadence / 3));
            }
        }
        // Over budget: drop the oldest visits (the newest decide who is due).
        if self.out.visits.len() > budget {
            self.out
                .visits
                .sort_by(|a, b| b.visited_on.cmp(&a.visited_on).then(a.id.cmp(&b.id)));
            self.out.visits.truncate(budget);
        }
    }
}

fn other_sex(s: Sex) -> Sex {
    if s == Sex::Male {
        Sex::Female
    } else {
        Sex::Male
    }
}
