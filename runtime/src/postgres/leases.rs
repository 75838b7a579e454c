//! Leases on the stream partitions of a projection split across worker processes
//! ([`ProjectionWorker`](crate::projection::ProjectionWorker)), kept in the read-model
//! catalog: `workers` says who is alive until when, `leases` who holds which partition
//! until when. Times are the server's (`now()`), so the workers' clocks never matter.

use crate::projection::{LeaseRequest, PartitionLeases, ReadModelError, Target, check_name};

use super::CATALOG_SCHEMA;
use super::read_model::{PostgresReadModel, database, pg_version};

impl PartitionLeases for PostgresReadModel {
    async fn claim(&self, request: &LeaseRequest<'_>) -> Result<Vec<u32>, ReadModelError> {
        let target = request.target;
        check_name(target.name)?;
        let version = pg_version(target)?;
        let count = i32::try_from(request.partitions).unwrap_or(i32::MAX);
        let ttl = request.ttl.as_secs_f64();
        let worker = request.worker;
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(database(target, "begin a lease claim"))?;
        // A claimer paused mid-claim must not hold the others' claims up past its leases.
        tx.batch_execute(&format!(
            "SET LOCAL idle_in_transaction_session_timeout = {}",
            request.ttl.as_millis().max(1)
        ))
        .await
        .map_err(database(target, "begin a lease claim"))?;
        // Claims of one version take turns, so two workers never count each other out or
        // take the same partition.
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            &[&format!("factum_leases:{}:{}", target.name, target.version)],
        )
        .await
        .map_err(database(target, "lock the leases"))?;
        tx.execute(
            &format!(
                "INSERT INTO {CATALOG_SCHEMA}.workers (name, version, worker, expires_at)
                 VALUES ($1, $2, $3, now() + make_interval(secs => $4))
                 ON CONFLICT (name, version, worker) DO UPDATE SET expires_at = excluded.expires_at"
            ),
            &[&target.name, &version, &worker, &ttl],
        )
        .await
        .map_err(database(target, "record a live worker"))?;
        let live: i64 = tx
            .query_one(
                &format!(
                    "WITH gone AS (
                         DELETE FROM {CATALOG_SCHEMA}.workers
                         WHERE name = $1 AND version = $2 AND expires_at <= now()
                     )
                     SELECT count(*) FROM {CATALOG_SCHEMA}.workers
                     WHERE name = $1 AND version = $2 AND expires_at > now()"
                ),
                &[&target.name, &version],
            )
            .await
            .map_err(database(target, "count the live workers"))?
            .get(0);
        tx.execute(
            &format!(
                "INSERT INTO {CATALOG_SCHEMA}.leases (name, version, partition)
                 SELECT $1, $2, partition FROM generate_series(0, $3 - 1) AS partition
                 ON CONFLICT (name, version, partition) DO NOTHING"
            ),
            &[&target.name, &version, &count],
        )
        .await
        .map_err(database(target, "create the leases"))?;
        let mut held: Vec<i32> = tx
            .query(
                &format!(
                    "UPDATE {CATALOG_SCHEMA}.leases SET expires_at = now() + make_interval(secs => $4)
                     WHERE name = $1 AND version = $2 AND owner = $3
                     RETURNING partition"
                ),
                &[&target.name, &version, &worker, &ttl],
            )
            .await
            .map_err(database(target, "renew the leases"))?
            .iter()
            .map(|row| row.get(0))
            .collect();
        held.sort_unstable();
        // This worker counted itself alive above, so `live` is at least 1.
        let live = i32::try_from(live.max(1)).unwrap_or(i32::MAX);
        let share = usize::try_from((count + live - 1) / live).unwrap_or(0);
        if held.len() > share {
            // Partitions beyond the share (or beyond the count, left by workers with
            // another count) go back, for workers that joined since.
            let extra = held.split_off(share);
            tx.execute(
                &format!(
                    "UPDATE {CATALOG_SCHEMA}.leases SET owner = NULL, expires_at = '-infinity'
                     WHERE name = $1 AND version = $2 AND partition = ANY($3)"
                ),
                &[&target.name, &version, &extra],
            )
            .await
            .map_err(database(target, "give leases back"))?;
        }
        if held.len() < share {
            let wanted = i64::try_from(share - held.len()).unwrap_or(i64::MAX);
            let taken = tx
                .query(
                    &format!(
                        "UPDATE {CATALOG_SCHEMA}.leases SET owner = $3, expires_at = now() + make_interval(secs => $4)
                         WHERE name = $1 AND version = $2 AND partition IN (
                             SELECT partition FROM {CATALOG_SCHEMA}.leases
                             WHERE name = $1 AND version = $2 AND partition < $5
                               AND (owner IS NULL OR expires_at <= now())
                             ORDER BY partition LIMIT $6
                         )
                         RETURNING partition"
                    ),
                    &[&target.name, &version, &worker, &ttl, &count, &wanted],
                )
                .await
                .map_err(database(target, "take leases"))?;
            held.extend(taken.iter().map(|row| row.get::<_, i32>(0)));
        }
        tx.commit()
            .await
            .map_err(database(target, "commit a lease claim"))?;
        let mut held: Vec<u32> = held
            .into_iter()
            .filter_map(|partition| u32::try_from(partition).ok())
            .filter(|&partition| partition < request.partitions)
            .collect();
        held.sort_unstable();
        Ok(held)
    }

    async fn release(&self, target: Target, worker: &str) -> Result<(), ReadModelError> {
        check_name(target.name)?;
        let version = pg_version(target)?;
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(database(target, "begin a lease release"))?;
        tx.execute(
            &format!(
                "UPDATE {CATALOG_SCHEMA}.leases SET owner = NULL, expires_at = '-infinity'
                 WHERE name = $1 AND version = $2 AND owner = $3"
            ),
            &[&target.name, &version, &worker],
        )
        .await
        .map_err(database(target, "give the leases back"))?;
        tx.execute(
            &format!(
                "DELETE FROM {CATALOG_SCHEMA}.workers WHERE name = $1 AND version = $2 AND worker = $3"
            ),
            &[&target.name, &version, &worker],
        )
        .await
        .map_err(database(target, "forget a worker"))?;
        tx.commit()
            .await
            .map_err(database(target, "commit a lease release"))
    }
}
