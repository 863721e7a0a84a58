//! Every SQL statement of the crate, written once and compiled for both backends.
//!
//! [`statements!`] expands into one module per backend; the only differences
//! between dialects are passed in as literals: the expression for the database
//! clock (`now`) and the row lock that serializes audit appends on PostgreSQL (a
//! SQLite write transaction already holds the database's single write lock).
//! Parameters are `$1`-style, which sqlx binds by number on both backends.

macro_rules! statements {
    ($module:ident, $db:ty, now = $now:literal, lock = $lock:literal) => {
        pub(crate) mod $module {
            use sqlx::{Pool, query, query_as};
            use uuid::Uuid;

            use crate::rows::{ApiKeyRow, AuditRow, HeadRow, OrgRow};

            type Conn = <$db as sqlx::Database>::Connection;

            pub(crate) async fn ping(pool: &Pool<$db>) -> sqlx::Result<()> {
                query("SELECT 1").execute(pool).await.map(|_| ())
            }

            pub(crate) async fn insert_org(
                c: &mut Conn,
                id: Uuid,
                name: &str,
            ) -> sqlx::Result<OrgRow> {
                query_as(
                    "INSERT INTO organizations (id, name) VALUES ($1, $2) \
                     RETURNING id, name, created_at",
                )
                .bind(id)
                .bind(name)
                .fetch_one(c)
                .await
            }

            pub(crate) async fn get_org(pool: &Pool<$db>, id: Uuid) -> sqlx::Result<Option<OrgRow>> {
                query_as("SELECT id, name, created_at FROM organizations WHERE id = $1")
                    .bind(id)
                    .fetch_optional(pool)
                    .await
            }

            pub(crate) async fn insert_key(
                c: &mut Conn,
                org: Uuid,
                key: &rwa_domain::api_key::NewApiKey,
            ) -> sqlx::Result<ApiKeyRow> {
                query_as(
                    "INSERT INTO api_keys (id, org_id, role, label, prefix, digest) \
                     VALUES ($1, $2, $3, $4, $5, $6) \
                     RETURNING id, org_id, role, label, prefix, digest, created_at, last_used_at, revoked_at",
                )
                .bind(key.id.as_uuid())
                .bind(org)
                .bind(key.role.as_str())
                .bind(key.label.as_deref())
                .bind(&key.prefix)
                .bind(key.digest.as_hex())
                .fetch_one(c)
                .await
            }

            pub(crate) async fn list_keys(
                pool: &Pool<$db>,
                org: Uuid,
                after: Option<Uuid>,
                fetch: i64,
            ) -> sqlx::Result<Vec<ApiKeyRow>> {
                query_as(
                    "SELECT id, org_id, role, label, prefix, digest, created_at, last_used_at, revoked_at \
                     FROM api_keys WHERE org_id = $1 AND ($2 IS NULL OR id > $2) ORDER BY id LIMIT $3",
                )
                .bind(org)
                .bind(after)
                .bind(fetch)
                .fetch_all(pool)
                .await
            }

            pub(crate) async fn get_key(
                pool: &Pool<$db>,
                org: Uuid,
                id: Uuid,
            ) -> sqlx::Result<Option<ApiKeyRow>> {
                query_as(
                    "SELECT id, org_id, role, label, prefix, digest, created_at, last_used_at, revoked_at \
                     FROM api_keys WHERE org_id = $1 AND id = $2",
                )
                .bind(org)
                .bind(id)
                .fetch_optional(pool)
                .await
            }

            /// Sets `revoked_at` once; a second revocation keeps the first time.
            pub(crate) async fn revoke_key(
                c: &mut Conn,
                org: Uuid,
                id: Uuid,
            ) -> sqlx::Result<Option<ApiKeyRow>> {
                query_as(concat!(
                    "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ",
                    $now,
                    ") WHERE org_id = $1 AND id = $2 \
                     RETURNING id, org_id, role, label, prefix, digest, created_at, last_used_at, revoked_at"
                ))
                .bind(org)
                .bind(id)
                .fetch_optional(c)
                .await
            }

            pub(crate) async fn find_key_by_digest(
                pool: &Pool<$db>,
                digest: &str,
            ) -> sqlx::Result<Option<ApiKeyRow>> {
                query_as(
                    "SELECT id, org_id, role, label, prefix, digest, created_at, last_used_at, revoked_at \
                     FROM api_keys WHERE digest = $1",
                )
                .bind(digest)
                .fetch_optional(pool)
                .await
            }

            pub(crate) async fn touch_key(pool: &Pool<$db>, id: Uuid) -> sqlx::Result<()> {
                query(concat!("UPDATE api_keys SET last_used_at = ", $now, " WHERE id = $1"))
                    .bind(id)
                    .execute(pool)
                    .await
                    .map(|_| ())
            }

            pub(crate) async fn lock_audit_head(c: &mut Conn) -> sqlx::Result<HeadRow> {
                query_as(concat!(
                    "SELECT seq, hash, ",
                    $now,
                    " AS now FROM audit_head WHERE id = 1 ",
                    $lock
                ))
                .fetch_one(c)
                .await
            }

            /// Appends one entry to the audit chain inside the caller's transaction.
            pub(crate) async fn append_audit(
                c: &mut Conn,
                org: rwa_domain::OrgId,
                actor: &rwa_domain::Actor,
                record: &rwa_domain::audit::AuditRecord,
            ) -> sqlx::Result<()> {
                let head = lock_audit_head(&mut *c).await?;
                let entry = crate::audit::next_entry(head, org, actor, record);
                insert_audit(c, &entry).await
            }

            async fn insert_audit(
                c: &mut Conn,
                e: &rwa_domain::audit::AuditEntry,
            ) -> sqlx::Result<()> {
                query(
                    "INSERT INTO audit_log \
                     (seq, id, org_id, actor, action, target, data, created_at, prev_hash, hash) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(e.seq)
                .bind(e.id.as_uuid())
                .bind(e.org_id.as_uuid())
                .bind(&e.actor)
                .bind(&e.action)
                .bind(&e.target)
                .bind(&e.data)
                .bind(e.created_at)
                .bind(&e.prev_hash)
                .bind(&e.hash)
                .execute(&mut *c)
                .await?;
                query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
                    .bind(e.seq)
                    .bind(&e.hash)
                    .execute(c)
                    .await
                    .map(|_| ())
            }

            pub(crate) async fn list_audit(
                pool: &Pool<$db>,
                org: Uuid,
                after: Option<Uuid>,
                fetch: i64,
            ) -> sqlx::Result<Vec<AuditRow>> {
                query_as(
                    "SELECT seq, id, org_id, actor, action, target, data, created_at, prev_hash, hash \
                     FROM audit_log WHERE org_id = $1 \
                     AND ($2 IS NULL OR seq > (SELECT seq FROM audit_log WHERE id = $2)) \
                     ORDER BY seq LIMIT $3",
                )
                .bind(org)
                .bind(after)
                .bind(fetch)
                .fetch_all(pool)
                .await
            }

            pub(crate) async fn audit_run(
                pool: &Pool<$db>,
                after_seq: i64,
                fetch: i64,
            ) -> sqlx::Result<Vec<AuditRow>> {
                query_as(
                    "SELECT seq, id, org_id, actor, action, target, data, created_at, prev_hash, hash \
                     FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2",
                )
                .bind(after_seq)
                .bind(fetch)
                .fetch_all(pool)
                .await
            }

            pub(crate) async fn audit_head(pool: &Pool<$db>) -> sqlx::Result<(i64, String)> {
                query_as("SELECT seq, hash FROM audit_head WHERE id = 1")
                    .fetch_one(pool)
                    .await
            }
        }
    };
}

statements!(
    sqlite,
    sqlx::Sqlite,
    now = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
    lock = ""
);
statements!(postgres, sqlx::Postgres, now = "now()", lock = "FOR UPDATE");
