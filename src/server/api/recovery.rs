//! A device's recovery secret: the app stores it here for its own device (its database key
//! stays sealed under it on the phone; the county never sees the key), and gets it back after
//! ten wrong PINs by signing in with the account's password from that same device.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use chrono::Utc;

use super::{JsonBody, blocking, peer};
use crate::server::AppState;
use crate::server::auth::{self, Auth};
use crate::server::error::Failure;
use crate::server::openapi::{
    Forbidden, Internal, Invalid, NotFound, RateLimited, Unauthorized, Unavailable,
    UnsupportedEncoding,
};
use crate::server::repo;
use crate::wire::{LoginRequest, RecoveryRelease, RecoveryStore};

#[utoipa::path(
    put,
    path = "/device/recovery",
    tag = "session",
    summary = "Keep this device's recovery secret",
    description = "The signed-in device's recovery secret (32 bytes, base64), kept for this \
        device and account, replacing any earlier one; audited as `RECOVERY_STORE`. The app \
        seals its database key under it on the phone; the key itself never reaches the \
        county. The body may be gzipped.",
    request_body = RecoveryStore,
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Kept."),
        (status = 401, response = Unauthorized),
        (status = 415, response = UnsupportedEncoding),
        (status = 422, response = Invalid),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn recovery_store(
    State(s): State<AppState>,
    a: Auth,
    JsonBody(b): JsonBody<RecoveryStore>,
) -> Result<StatusCode, Failure> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b.secret.trim())
        .unwrap_or_default();
    if bytes.len() != 32 {
        return Err(Failure::invalid(
            "找回密钥格式不对：须为 32 字节的 base64 (the secret must be 32 bytes, base64)",
            Some("secret"),
        ));
    }
    s.write(move |db| {
        let now = Utc::now();
        repo::put_recovery(db, a.device, &a.user.username, b.secret.trim(), now)?;
        repo::audit(
            db,
            now,
            &a.user.username,
            Some(a.device),
            "RECOVERY_STORE",
            None,
            None,
            None,
        )?;
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post,
    path = "/device/recovery/release",
    tag = "session",
    summary = "Release this device's recovery secret",
    description = "Signs in exactly as `POST /auth/login` does (the same password check, rate \
        limits and device enrolment: 401, 403 for a device enrolled to another account, 429) \
        and answers the recovery secret this device stored for this account, with the new \
        session; audited as `RECOVERY_RELEASE`. 404 when this device holds none for this \
        account (never stored, or the device was released since). The body may be gzipped.",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "The secret and the session.", body = RecoveryRelease),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 415, response = UnsupportedEncoding),
        (status = 422, response = Invalid),
        (status = 429, response = RateLimited),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn recovery_release(
    State(s): State<AppState>,
    extensions: axum::http::Extensions,
    JsonBody(req): JsonBody<LoginRequest>,
) -> Result<Response, Failure> {
    let from = peer(&extensions);
    let _turn = s.db.write_turn().await;
    let res = blocking(move || {
        let now = Utc::now();
        let session = auth::login_from(&s, &req, from, now)?;
        let username = session.account.username.clone();
        let secret = s.db.tx(|db| -> Result<_, Failure> {
            let secret = repo::recovery_secret(db, req.device_id, &username)?;
            repo::audit(
                db,
                now,
                &username,
                Some(req.device_id),
                "RECOVERY_RELEASE",
                None,
                None,
                Some(if secret.is_some() { "released" } else { "none kept" }.into()),
            )?;
            Ok(secret)
        })?;
        let secret = secret.ok_or_else(|| {
            Failure::NotFound(
                "县里没有这台设备的找回密钥（从未上传，或设备登记已被解除）：只能清除本机数据后重新登记 \
                 (the county keeps no recovery secret for this device)"
                    .into(),
            )
        })?;
        Ok(RecoveryRelease { secret, session })
    })
    .await?;
    Ok(Json(res).into_response())
}
