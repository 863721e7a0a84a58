//! Every SQL statement of the crate, written once and compiled for both backends.
//!
//! [`statements!`] expands into one module per backend; the only differences
//! between dialects are passed in as literals: the expression for the database
//! clock (`now`) and the row lock that serializes audit appends on PostgreSQL (a
//! SQLite write transaction already holds the database's single write lock).
//! Parameters are `$1`-style, which sqlx binds by number on both backends.

/// Columns of `managed_txs`, in [`crate::txs::TxRow`] order.
macro_rules! tx_columns {
    () => {
        "id, key, lane, chain_id, from_address, nonce, to_address, value, input, gas_limit, state, \
         mined_hash, block_number, block_hash, gas_used, effective_gas_price, contract_address, error, \
         created_at, updated_at"
    };
}

/// Columns of `tokens`, in [`crate::tokens::TokenRow`] order.
macro_rules! token_columns {
    () => {
        "id, org_id, name, symbol, decimals, compliance, status, chain_id, address, deploy_tx_hash, \
         deploy_block, identity_registry, compliance_address, failure_reason, created_at, updated_at"
    };
}

macro_rules! statements {
    ($module:ident, $db:ty, now = $now:literal, lock = $lock:literal, enqueue = $enqueue:path) => {
        pub(crate) mod $module {
            use sqlx::{Pool, query, query_as, query_scalar};
            use uuid::Uuid;

            use crate::rows::{ApiKeyRow, AuditRow, EventRow, HeadRow, OrgRow};
            use crate::tokens::TokenRow;
            use crate::txs::{AttemptRow, TxRow};

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

            pub(crate) async fn ensure_nonce_row(
                c: &mut Conn,
                chain_id: i64,
                address: &str,
                floor: i64,
            ) -> sqlx::Result<()> {
                query(
                    "INSERT INTO tx_nonces (chain_id, address, next_nonce) VALUES ($1, $2, $3) \
                     ON CONFLICT (chain_id, address) DO NOTHING",
                )
                .bind(chain_id)
                .bind(address)
                .bind(floor)
                .execute(c)
                .await
                .map(|_| ())
            }

            /// Reads a sender's next nonce, locking its row until the caller's
            /// transaction ends (SQLite: the write transaction already holds the lock).
            pub(crate) async fn lock_next_nonce(
                c: &mut Conn,
                chain_id: i64,
                address: &str,
            ) -> sqlx::Result<i64> {
                query_scalar(concat!(
                    "SELECT next_nonce FROM tx_nonces WHERE chain_id = $1 AND address = $2 ",
                    $lock
                ))
                .bind(chain_id)
                .bind(address)
                .fetch_one(c)
                .await
            }

            pub(crate) async fn next_nonce(
                pool: &Pool<$db>,
                chain_id: i64,
                address: &str,
            ) -> sqlx::Result<Option<i64>> {
                query_scalar("SELECT next_nonce FROM tx_nonces WHERE chain_id = $1 AND address = $2")
                    .bind(chain_id)
                    .bind(address)
                    .fetch_optional(pool)
                    .await
            }

            pub(crate) async fn set_next_nonce(
                c: &mut Conn,
                chain_id: i64,
                address: &str,
                next: i64,
            ) -> sqlx::Result<()> {
                query("UPDATE tx_nonces SET next_nonce = $3 WHERE chain_id = $1 AND address = $2")
                    .bind(chain_id)
                    .bind(address)
                    .bind(next)
                    .execute(c)
                    .await
                    .map(|_| ())
            }

            pub(crate) async fn insert_tx(c: &mut Conn, t: &crate::txs::NewTxRow<'_>) -> sqlx::Result<()> {
                query(
                    "INSERT INTO managed_txs (id, key, lane, chain_id, from_address, nonce, to_address, \
                     value, input, gas_limit, state) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'pending')",
                )
                .bind(t.id)
                .bind(t.key)
                .bind(t.lane)
                .bind(t.chain_id)
                .bind(&t.from)
                .bind(t.nonce)
                .bind(&t.to)
                .bind(&t.value)
                .bind(&t.input)
                .bind(t.gas_limit)
                .execute(c)
                .await
                .map(|_| ())
            }

            pub(crate) async fn tx_by_id<'e, E>(e: E, id: Uuid) -> sqlx::Result<Option<TxRow>>
            where
                E: sqlx::Executor<'e, Database = $db>,
            {
                query_as(concat!("SELECT ", tx_columns!(), " FROM managed_txs WHERE id = $1"))
                    .bind(id)
                    .fetch_optional(e)
                    .await
            }

            pub(crate) async fn tx_by_key<'e, E>(e: E, key: &str) -> sqlx::Result<Option<TxRow>>
            where
                E: sqlx::Executor<'e, Database = $db>,
            {
                query_as(concat!("SELECT ", tx_columns!(), " FROM managed_txs WHERE key = $1"))
                    .bind(key)
                    .fetch_optional(e)
                    .await
            }

            pub(crate) async fn open_txs(
                pool: &Pool<$db>,
                chain_id: i64,
                from: &str,
            ) -> sqlx::Result<Vec<TxRow>> {
                query_as(concat!(
                    "SELECT ",
                    tx_columns!(),
                    " FROM managed_txs WHERE chain_id = $1 AND from_address = $2 \
                     AND state IN ('pending', 'submitted', 'confirmed') ORDER BY nonce"
                ))
                .bind(chain_id)
                .bind(from)
                .fetch_all(pool)
                .await
            }

            pub(crate) async fn attempts_of<'e, E>(e: E, tx_id: Uuid) -> sqlx::Result<Vec<AttemptRow>>
            where
                E: sqlx::Executor<'e, Database = $db>,
            {
                query_as(
                    "SELECT tx_id, hash, max_fee_per_gas, max_priority_fee_per_gas, raw, created_at \
                     FROM tx_attempts WHERE tx_id = $1 ORDER BY created_at, hash",
                )
                .bind(tx_id)
                .fetch_all(e)
                .await
            }

            /// Attempts of every open transaction of a sender, in one statement.
            pub(crate) async fn attempts_of_open(
                pool: &Pool<$db>,
                chain_id: i64,
                from: &str,
            ) -> sqlx::Result<Vec<AttemptRow>> {
                query_as(
                    "SELECT a.tx_id, a.hash, a.max_fee_per_gas, a.max_priority_fee_per_gas, a.raw, a.created_at \
                     FROM tx_attempts a JOIN managed_txs t ON t.id = a.tx_id \
                     WHERE t.chain_id = $1 AND t.from_address = $2 \
                     AND t.state IN ('pending', 'submitted', 'confirmed') ORDER BY a.created_at, a.hash",
                )
                .bind(chain_id)
                .bind(from)
                .fetch_all(pool)
                .await
            }

            pub(crate) async fn insert_attempt(
                c: &mut Conn,
                tx_id: Uuid,
                a: &crate::txs::AttemptParams,
            ) -> sqlx::Result<()> {
                query(
                    "INSERT INTO tx_attempts (hash, tx_id, max_fee_per_gas, max_priority_fee_per_gas, raw) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (hash) DO NOTHING",
                )
                .bind(&a.hash)
                .bind(tx_id)
                .bind(&a.max_fee)
                .bind(&a.priority_fee)
                .bind(&a.raw)
                .execute(&mut *c)
                .await?;
                query(concat!(
                    "UPDATE managed_txs SET state = 'submitted', updated_at = ",
                    $now,
                    " WHERE id = $1 AND state = 'pending'"
                ))
                .bind(tx_id)
                .execute(c)
                .await
                .map(|_| ())
            }

            /// Sets or clears where the transaction was mined; only a transaction
            /// that is not terminal moves.
            pub(crate) async fn set_inclusion(
                c: &mut Conn,
                tx_id: Uuid,
                i: Option<&crate::txs::InclusionParams>,
            ) -> sqlx::Result<u64> {
                query(concat!(
                    "UPDATE managed_txs SET state = $2, mined_hash = $3, block_number = $4, \
                     block_hash = $5, gas_used = $6, effective_gas_price = $7, contract_address = $8, \
                     updated_at = ",
                    $now,
                    " WHERE id = $1 AND state IN ('submitted', 'confirmed')"
                ))
                .bind(tx_id)
                .bind(if i.is_some() { "confirmed" } else { "submitted" })
                .bind(i.map(|i| i.hash.as_str()))
                .bind(i.map(|i| i.block_number))
                .bind(i.map(|i| i.block_hash.as_str()))
                .bind(i.map(|i| i.gas_used))
                .bind(i.map(|i| i.effective_gas_price.as_str()))
                .bind(i.and_then(|i| i.contract_address.as_deref()))
                .execute(c)
                .await
                .map(|r| r.rows_affected())
            }

            pub(crate) async fn finish_tx(
                c: &mut Conn,
                tx_id: Uuid,
                state: &str,
                error: Option<&str>,
            ) -> sqlx::Result<u64> {
                query(concat!(
                    "UPDATE managed_txs SET state = $2, error = $3, updated_at = ",
                    $now,
                    " WHERE id = $1 AND state NOT IN ('settled', 'failed')"
                ))
                .bind(tx_id)
                .bind(state)
                .bind(error)
                .execute(c)
                .await
                .map(|r| r.rows_affected())
            }

            pub(crate) async fn audit_head(pool: &Pool<$db>) -> sqlx::Result<(i64, String)> {
                query_as("SELECT seq, hash FROM audit_head WHERE id = 1")
                    .fetch_one(pool)
                    .await
            }

            /// Enqueues a job inside the caller's transaction (it runs only if that commits).
            pub(crate) async fn enqueue_job(
                c: &mut Conn,
                job: &rwa_jobs::NewJob,
            ) -> rwa_domain::RepoResult<rwa_domain::jobs::Job> {
                $enqueue(c, job).await
            }

            pub(crate) async fn insert_token(
                c: &mut Conn,
                org: Uuid,
                t: &rwa_domain::token::NewToken,
            ) -> sqlx::Result<TokenRow> {
                query_as(concat!(
                    "INSERT INTO tokens (id, org_id, name, symbol, decimals, compliance, status) \
                     VALUES ($1, $2, $3, $4, $5, $6, 'pending_deployment') RETURNING ",
                    token_columns!()
                ))
                .bind(t.id.as_uuid())
                .bind(org)
                .bind(t.name.as_str())
                .bind(t.symbol.as_str())
                .bind(i32::from(t.decimals))
                .bind(t.compliance.to_stored().to_string())
                .fetch_one(c)
                .await
            }

            /// One token; `org` scopes it unless `None` (system callers).
            pub(crate) async fn get_token(
                pool: &Pool<$db>,
                org: Option<Uuid>,
                id: Uuid,
            ) -> sqlx::Result<Option<TokenRow>> {
                query_as(concat!(
                    "SELECT ",
                    token_columns!(),
                    " FROM tokens WHERE id = $1 AND ($2 IS NULL OR org_id = $2)"
                ))
                .bind(id)
                .bind(org)
                .fetch_optional(pool)
                .await
            }

            pub(crate) async fn list_tokens(
                pool: &Pool<$db>,
                org: Uuid,
                after: Option<Uuid>,
                fetch: i64,
            ) -> sqlx::Result<Vec<TokenRow>> {
                query_as(concat!(
                    "SELECT ",
                    token_columns!(),
                    " FROM tokens WHERE org_id = $1 AND ($2 IS NULL OR id > $2) ORDER BY id LIMIT $3"
                ))
                .bind(org)
                .bind(after)
                .bind(fetch)
                .fetch_all(pool)
                .await
            }

            /// Moves a pending token to `deployed`; `None` if it was not pending.
            pub(crate) async fn mark_token_deployed(
                c: &mut Conn,
                id: Uuid,
                d: &rwa_domain::token::TokenDeployment,
            ) -> sqlx::Result<Option<TokenRow>> {
                query_as(concat!(
                    "UPDATE tokens SET status = 'deployed', chain_id = $2, address = $3, \
                     deploy_tx_hash = $4, deploy_block = $5, identity_registry = $6, \
                     compliance_address = $7, updated_at = ",
                    $now,
                    " WHERE id = $1 AND status = 'pending_deployment' RETURNING ",
                    token_columns!()
                ))
                .bind(id)
                .bind(d.chain_id as i64)
                .bind(format!("{:#x}", d.address))
                .bind(format!("{:#x}", d.deploy_tx_hash))
                .bind(d.block_number as i64)
                .bind(format!("{:#x}", d.identity_registry))
                .bind(format!("{:#x}", d.compliance))
                .fetch_optional(c)
                .await
            }

            /// Moves a pending token to `failed`; `None` if it was not pending.
            pub(crate) async fn mark_token_failed(
                c: &mut Conn,
                id: Uuid,
                reason: &str,
            ) -> sqlx::Result<Option<TokenRow>> {
                query_as(concat!(
                    "UPDATE tokens SET status = 'failed', failure_reason = $2, updated_at = ",
                    $now,
                    " WHERE id = $1 AND status = 'pending_deployment' RETURNING ",
                    token_columns!()
                ))
                .bind(id)
                .bind(reason)
                .fetch_optional(c)
                .await
            }

            pub(crate) async fn get_identity_registry(
                pool: &Pool<$db>,
                org: Uuid,
                chain_id: i64,
            ) -> sqlx::Result<Option<String>> {
                query_scalar(
                    "SELECT address FROM identity_registries WHERE org_id = $1 AND chain_id = $2",
                )
                .bind(org)
                .bind(chain_id)
                .fetch_optional(pool)
                .await
            }

            /// Records an organization's registry; the first record wins and is returned.
            pub(crate) async fn insert_identity_registry(
                c: &mut Conn,
                org: Uuid,
                chain_id: i64,
                address: &str,
            ) -> sqlx::Result<String> {
                query(
                    "INSERT INTO identity_registries (org_id, chain_id, address) VALUES ($1, $2, $3) \
                     ON CONFLICT (org_id, chain_id) DO NOTHING",
                )
                .bind(org)
                .bind(chain_id)
                .bind(address)
                .execute(&mut *c)
                .await?;
                query_scalar(
                    "SELECT address FROM identity_registries WHERE org_id = $1 AND chain_id = $2",
                )
                .bind(org)
                .bind(chain_id)
                .fetch_one(c)
                .await
            }

            /// Appends an event inside the caller's transaction. Taking the next
            /// `seq` updates (so locks, until commit) the one `event_head` row.
            pub(crate) async fn append_event(
                c: &mut Conn,
                org: Uuid,
                kind: &str,
                data: &serde_json::Value,
            ) -> sqlx::Result<i64> {
                let seq: i64 =
                    query_scalar("UPDATE event_head SET seq = seq + 1 WHERE id = 1 RETURNING seq")
                        .fetch_one(&mut *c)
                        .await?;
                query("INSERT INTO events (seq, id, type, org_id, data) VALUES ($1, $2, $3, $4, $5)")
                    .bind(seq)
                    .bind(Uuid::now_v7())
                    .bind(kind)
                    .bind(org)
                    .bind(data.to_string())
                    .execute(c)
                    .await?;
                Ok(seq)
            }

            pub(crate) async fn list_events(
                pool: &Pool<$db>,
                org: Uuid,
                after: i64,
                limit: i64,
            ) -> sqlx::Result<Vec<EventRow>> {
                query_as(
                    "SELECT seq, id, type AS kind, org_id, created_at, data FROM events \
                     WHERE org_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                )
                .bind(org)
                .bind(after)
                .bind(limit)
                .fetch_all(pool)
                .await
            }
        }
    };
}

statements!(
    sqlite,
    sqlx::Sqlite,
    now = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
    lock = "",
    enqueue = rwa_jobs::enqueue_sqlite
);
statements!(
    postgres,
    sqlx::Postgres,
    now = "now()",
    lock = "FOR UPDATE",
    enqueue = rwa_jobs::enqueue_postgres
);
