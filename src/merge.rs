//! The merge rule for concurrent edits, field by field. Pure: the server applies it inside a
//! push's transaction.
//!
//! Every field of an entity on the server carries the server sequence number of its last
//! change (`version`), when that change was made (`at`, server clock) and by whom (`by`).
//! An edit from a device names the version it was based on. Then, per field:
//!
//! 1. The server has not changed the field since the edit's base version, or only this same
//!    device changed it since (its own earlier edit) → the edit applies.
//! 2. Same value either way → nothing to do, no conflict.
//! 3. Otherwise the edits are concurrent: the one made **later** wins, where a device's edit
//!    time is corrected for that device's clock skew as measured at push time
//!    (`edited_at + (server_now − device_now)`, never later than `server_now`). Equal times
//!    go to the greater author name, then the greater value, so the winner is the same
//!    whatever order edits arrive in.
//!    The losing value is kept in a conflict record.
//!
//! Why corrected time and not the device's clock: a phone whose clock runs a day fast would
//! otherwise win every conflict, including against edits made days after its own. The skew
//! is measured when it pushes, so an edit made offline days ago keeps its true age.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What the server knows of one field's current value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldMeta {
    /// Server sequence number of the change that set it.
    pub version: i64,
    /// When that edit was made (server clock; device edits corrected for skew).
    pub at: DateTime<Utc>,
    /// Who made it.
    pub by: String,
    /// The device it came from, if a device made it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<uuid::Uuid>,
}

/// One incoming edit of one field.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldEdit<'a> {
    pub value: &'a serde_json::Value,
    pub base_version: i64,
    /// Corrected edit time (see [`corrected_time`]).
    pub at: DateTime<Utc>,
    pub by: &'a str,
    pub device: Option<uuid::Uuid>,
}

/// What to do with an edit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// No concurrent change: apply it.
    Apply,
    /// The value is already what the edit sets.
    Same,
    /// Concurrent, and the edit is later: apply it; the old value is the conflict's loser.
    WinsConflict,
    /// Concurrent, and the current value is later: keep it; the edit is the conflict's loser.
    LosesConflict,
}

/// A device's edit time on the server's clock: shifted by the skew measured at push, and
/// never in the future.
pub fn corrected_time(
    edited_at: DateTime<Utc>,
    device_now: DateTime<Utc>,
    server_now: DateTime<Utc>,
) -> DateTime<Utc> {
    let t = edited_at + (server_now - device_now);
    t.min(server_now)
}

/// Decides one field. `current` is `None` for a field the entity has never had.
pub fn decide(current: Option<(&serde_json::Value, &FieldMeta)>, edit: &FieldEdit<'_>) -> Decision {
    let Some((value, meta)) = current else {
        return Decision::Apply;
    };
    if value == edit.value {
        return Decision::Same;
    }
    // Not concurrent: the server has not changed it since the edit's base, or the change
    // since was this same device's own earlier edit (a device edits in order; its outbox
    // entries all carry the version it last pulled).
    if meta.version <= edit.base_version || (edit.device.is_some() && meta.device == edit.device) {
        return Decision::Apply;
    }
    // Later wins; equal times go to the greater author name, then to the greater value (as
    // JSON text), so the outcome never depends on which edit arrived first.
    let edit_key = (edit.at, edit.by, edit.value.to_string());
    let current_key = (meta.at, meta.by.as_str(), value.to_string());
    if edit_key > current_key {
        Decision::WinsConflict
    } else {
        Decision::LosesConflict
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_790_000_000 + s, 0).unwrap()
    }

    /// A tiny server holding one field: applies edits as the server does, in arrival order.
    #[derive(Debug, Clone)]
    struct Field {
        value: serde_json::Value,
        meta: FieldMeta,
        seq: i64,
        conflicts: Vec<serde_json::Value>,
    }

    impl Field {
        fn new() -> Field {
            Field {
                value: json!("base"),
                meta: FieldMeta {
                    version: 1,
                    at: t(0),
                    by: "import".into(),
                    device: None,
                },
                seq: 1,
                conflicts: vec![],
            }
        }

        fn apply(&mut self, value: &serde_json::Value, base: i64, at: DateTime<Utc>, by: &str) {
            let e = FieldEdit {
                value,
                base_version: base,
                at,
                by,
                device: None,
            };
            match decide(Some((&self.value, &self.meta)), &e) {
                Decision::Apply | Decision::WinsConflict => {
                    if decide(Some((&self.value, &self.meta)), &e) == Decision::WinsConflict {
                        self.conflicts.push(self.value.clone());
                    }
                    self.seq += 1;
                    self.value = value.clone();
                    self.meta = FieldMeta {
                        version: self.seq,
                        at,
                        by: by.to_owned(),
                        device: None,
                    };
                }
                Decision::LosesConflict => self.conflicts.push(value.clone()),
                Decision::Same => {}
            }
        }
    }

    #[test]
    fn an_edit_on_the_current_version_applies() {
        let meta = FieldMeta {
            version: 5,
            at: t(100),
            by: "a".into(),
            device: None,
        };
        let v = json!("x");
        let e = FieldEdit {
            value: &json!("y"),
            base_version: 5,
            at: t(50),
            by: "b",
            device: None,
        };
        assert_eq!(
            decide(Some((&v, &meta)), &e),
            Decision::Apply,
            "not concurrent: time does not matter"
        );
        let e = FieldEdit {
            value: &json!("x"),
            base_version: 1,
            at: t(50),
            by: "b",
            device: None,
        };
        assert_eq!(decide(Some((&v, &meta)), &e), Decision::Same);
        assert_eq!(decide(None, &e), Decision::Apply);
    }

    #[test]
    fn a_fast_clock_does_not_win_against_a_newer_edit() {
        // Device A's clock runs three days fast. It edited offline two days ago (really) and
        // pushes now. Device B edited an hour ago with a right clock and pushed first.
        let day = chrono::Duration::days(1);
        let skew = day * 3;
        let server_now = t(10 * 86_400);
        let a_edited_real = server_now - day * 2;
        let a_at = corrected_time(a_edited_real + skew, server_now + skew, server_now);
        assert_eq!(a_at, a_edited_real);
        let b_at = corrected_time(
            server_now - chrono::Duration::hours(1),
            server_now,
            server_now,
        );
        let current = json!("B's value");
        let meta = FieldMeta {
            version: 7,
            at: b_at,
            by: "worker-b".into(),
            device: None,
        };
        let e = FieldEdit {
            value: &json!("A's value"),
            base_version: 3,
            at: a_at,
            by: "worker-a",
            device: None,
        };
        assert_eq!(decide(Some((&current, &meta)), &e), Decision::LosesConflict);
        // By its own clock A's edit would have looked a day newer than B's.
        assert!(a_edited_real + skew > b_at);
    }

    #[test]
    fn a_devices_own_earlier_edit_is_not_concurrent_but_another_devices_is() {
        let (phone, tablet) = (uuid::Uuid::from_u128(1), uuid::Uuid::from_u128(2));
        // The phone pushed an edit (now version 7); its next edit still names base 3.
        let meta = FieldMeta {
            version: 7,
            at: t(100),
            by: "worker-a".into(),
            device: Some(phone),
        };
        let v = json!("first");
        let later = FieldEdit {
            value: &json!("second"),
            base_version: 3,
            at: t(50),
            by: "worker-a",
            device: Some(phone),
        };
        assert_eq!(decide(Some((&v, &meta)), &later), Decision::Apply);
        let other = FieldEdit {
            device: Some(tablet),
            ..later.clone()
        };
        assert_eq!(decide(Some((&v, &meta)), &other), Decision::LosesConflict);
    }

    #[test]
    fn corrected_time_is_never_in_the_future() {
        let now = t(1000);
        assert_eq!(corrected_time(t(2000), t(1000), now), now);
    }

    proptest! {
        /// Two concurrent edits (both based on the same version) give the same final value and
        /// keep the other value as a conflict, whichever arrives first.
        #[test]
        fn concurrent_edits_converge_whatever_the_order(
            a_at in 0i64..1000, b_at in 0i64..1000, same_author in any::<bool>(),
            a_val in "[a-c]{1,2}", b_val in "[a-c]{1,2}",
        ) {
            let (va, vb) = (json!(a_val), json!(b_val));
            let by_b = if same_author { "w" } else { "v" };
            let mut x = Field::new();
            x.apply(&va, 1, t(a_at), "w");
            x.apply(&vb, 1, t(b_at), by_b);
            let mut y = Field::new();
            y.apply(&vb, 1, t(b_at), by_b);
            y.apply(&va, 1, t(a_at), "w");
            prop_assert_eq!(&x.value, &y.value);
            if va != vb {
                prop_assert_eq!(x.conflicts.len(), 1);
                prop_assert_eq!(y.conflicts.len(), 1);
                prop_assert_eq!(&x.conflicts[0], &y.conflicts[0]);
                let winner = if (t(a_at), "w", va.to_string()) > (t(b_at), by_b, vb.to_string()) { &va } else { &vb };
                prop_assert_eq!(&x.value, winner);
            } else {
                prop_assert!(x.conflicts.is_empty() && y.conflicts.is_empty());
            }
        }

        /// Shifting one device's clock (its edit times and its clock at push alike) changes
        /// nothing in the outcome.
        #[test]
        fn a_constant_clock_skew_does_not_change_the_outcome(
            skew_h in -72i64..72, a_ago in 1i64..200, b_ago in 1i64..200,
        ) {
            let server_now = t(1_000_000);
            let run = |skew: chrono::Duration| {
                let a_at = corrected_time(server_now - chrono::Duration::minutes(a_ago) + skew, server_now + skew, server_now);
                let b_at = corrected_time(server_now - chrono::Duration::minutes(b_ago), server_now, server_now);
                let mut f = Field::new();
                f.apply(&json!("b"), 1, b_at, "worker-b");
                f.apply(&json!("a"), 1, a_at, "worker-a");
                f.value
            };
            prop_assert_eq!(run(chrono::Duration::zero()), run(chrono::Duration::hours(skew_h)));
        }

        /// An edit based on the field's current version always applies, whatever the times.
        #[test]
        fn sequential_edits_always_apply(at1 in 0i64..1000, at2 in 0i64..1000) {
            let mut f = Field::new();
            f.apply(&json!("one"), 1, t(at1), "a");
            let v = f.meta.version;
            f.apply(&json!("two"), v, t(at2), "b");
            prop_assert_eq!(f.value, json!("two"));
            prop_assert!(f.conflicts.is_empty());
        }
    }
}
