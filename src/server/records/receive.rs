//! Receiving pushes: each push's shape, device and sequence checked, its new entries queued in
//! the push inbox, all in the caller's transaction.

use super::*;
// Each push's answer is the HTTP answer to its request (a gap answers 409 with the sequence
// number expected), handed back to the request that waits for it.
use crate::server::error::Failure;

/// A push to receive: who sent it, from which device (the session's), and what.
pub struct Incoming<'a> {
    pub user: &'a User,
    pub device: Uuid,
    pub req: &'a PushRequest<RawFields>,
    /// `req.entries` packed for the inbox ([`repo::pack_entries`]), if the caller did it
    /// already (outside the transaction): queued as it is when every entry is new.
    pub packed: Option<&'a [u8]>,
}

/// Receives pushed batches in the caller's transaction, in order, in a handful of statements
/// whatever their number: checks each one's shape, device and sequence, and queues the
/// entries not seen before in the push inbox. Each answer acknowledges them (the device may
/// delete them), or refuses the push whole; [`apply_inbox`] applies the entries just after,
/// in arrival order, and an entry refused then goes down with the device's next pull.
/// Nothing but the watermark rows' locks is written before every push is decided (a row is
/// made for a new device lane, marked seen only by its owner), so a refused push needs no
/// savepoint. Only a database error fails the call.
pub fn receive_group(
    db: &mut dyn Sql,
    pushes: &[Incoming<'_>],
    server_now: DateTime<Utc>,
) -> Result<Vec<Result<PushResponse, Failure>>, Error> {
    let shapes: Vec<Result<(), Failure>> = pushes.iter().map(check_push_shape).collect();
    let keys: Vec<(Uuid, &str, &str)> = pushes
        .iter()
        .zip(&shapes)
        .filter(|(_, ok)| ok.is_ok())
        .map(|(p, _)| (p.device, p.req.lane.code(), p.user.username.as_str()))
        .collect();
    let mut marks = repo::lock_watermarks(db, &keys, server_now)?;
    let mut queued = Vec::new();
    let mut moved: BTreeMap<(Uuid, &str), i64> = BTreeMap::new();
    let mut answers = Vec::with_capacity(pushes.len());
    for (p, shape) in pushes.iter().zip(shapes) {
        let answer = shape.and_then(|()| {
            let lane = p.req.lane;
            let (watermark, owner) = marks
                .get_mut(&(p.device, lane.code().to_owned()))
                .ok_or_else(|| Failure::Internal("watermark row not locked".into()))?;
            if *owner != p.user.username {
                return Err(Failure::Forbidden(format!(
                    "device {} is enrolled to another account",
                    p.device
                )));
            }
            let wm = *watermark as u64;
            let fresh: Vec<&OutboxEntry<RawFields>> =
                p.req.entries.iter().filter(|e| e.seq > wm).collect();
            let replayed = (p.req.entries.len() - fresh.len()) as u32;
            if let Some(first) = fresh.first()
                && first.seq != wm + 1
            {
                return Err(Failure::Gap { expected: wm + 1 });
            }
            let acked = fresh.last().map(|e| e.seq).unwrap_or(wm).max(wm);
            if !fresh.is_empty() {
                let entries_zstd = match p.packed {
                    Some(all) if replayed == 0 => all.to_owned(),
                    _ => repo::pack_entries(
                        &serde_json::to_string(&fresh)
                            .map_err(|e| Failure::Internal(e.to_string()))?,
                    )?,
                };
                queued.push(repo::QueuedPush {
                    device: p.device,
                    lane: lane.code(),
                    username: &p.user.username,
                    device_now: p.req.device_now,
                    received_at: server_now,
                    entries_zstd,
                });
                *watermark = acked as i64;
                moved.insert((p.device, lane.code()), acked as i64);
            }
            Ok(PushResponse {
                lane,
                acked_through: acked,
                queued: fresh.len() as u32,
                replayed,
                held_through: None,
            })
        });
        answers.push(answer);
    }
    repo::queue_pushes(db, queued)?;
    let moved: Vec<(Uuid, &str, i64)> = moved.into_iter().map(|((d, l), s)| (d, l, s)).collect();
    repo::set_watermarks(db, &moved)?;
    Ok(answers)
}

/// The checks of a push that need no database: its device is the session's, and its
/// entries are of its lane, in sequence without gaps.
pub fn check_push_shape(p: &Incoming<'_>) -> Result<(), Failure> {
    let req = p.req;
    if req.device_id != p.device {
        return Err(Failure::Forbidden(format!(
            "this session belongs to device {}, not {}",
            p.device, req.device_id
        )));
    }
    let lane = req.lane;
    for (i, e) in req.entries.iter().enumerate() {
        if e.lane != lane || Lane::for_kind(e.kind) != lane {
            return Err(Failure::invalid(
                format!(
                    "a {} entry belongs in the {} lane",
                    e.kind,
                    Lane::for_kind(e.kind)
                ),
                Some(&format!("entries[{i}].lane")),
            ));
        }
        if i > 0 && e.seq != req.entries[i - 1].seq + 1 {
            return Err(Failure::invalid(
                "entries must be in sequence order without gaps",
                Some(&format!("entries[{i}].seq")),
            ));
        }
    }
    Ok(())
}
