use async_trait::async_trait;
use sqlx::SqlitePool;

use super::{AgencyRow, RegistryStore, is_unique_violation, resolve_duplicate, to_json};
use crate::domain::agency::{Agency, AgencyState};
use crate::error::Result;

const AGENCY_COLUMNS: &str = "code, display_name, parent_department, jurisdiction, state, duty_desk, contacts, \
     suspend_reason, suspend_time_us, create_time_us, update_time_us, revision";

pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    pub fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl RegistryStore for SqliteStore {
    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn create_agency(&self, agency: &Agency, request_id: Option<&str>) -> Result<Agency> {
        let inserted = sqlx::query(
            "INSERT INTO agencies (code, display_name, parent_department, jurisdiction, state, duty_desk, contacts, \
             suspend_reason, suspend_time_us, create_time_us, update_time_us, revision, request_id) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&agency.code)
        .bind(&agency.display_name)
        .bind(&agency.parent_department)
        .bind(&agency.jurisdiction)
        .bind(agency.state.as_str())
        .bind(to_json(&agency.duty_desk))
        .bind(to_json(&agency.contacts))
        .bind(&agency.suspend_reason)
        .bind(agency.suspend_time_us)
        .bind(agency.create_time_us)
        .bind(agency.update_time_us)
        .bind(agency.revision)
        .bind(request_id)
        .execute(&self.pool)
        .await;
        match inserted {
            Ok(_) => Ok(agency.clone()),
            Err(error) if is_unique_violation(&error) => {
                let stored: Option<String> =
                    sqlx::query_scalar("SELECT request_id FROM agencies WHERE code = ?")
                        .bind(&agency.code)
                        .fetch_one(&self.pool)
                        .await?;
                resolve_duplicate(self, &agency.code, request_id, stored).await
            }
            Err(error) => Err(error.into()),
        }
    }

    async fn get_agency(&self, code: &str) -> Result<Option<Agency>> {
        let row: Option<AgencyRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {AGENCY_COLUMNS} FROM agencies WHERE code = ?"
        )))
        .bind(code)
        .fetch_optional(&self.pool)
        .await?;
        row.map(Agency::try_from).transpose()
    }

    async fn list_agencies(
        &self,
        after_code: Option<&str>,
        state: Option<AgencyState>,
        limit: u32,
    ) -> Result<Vec<Agency>> {
        let rows: Vec<AgencyRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {AGENCY_COLUMNS} FROM agencies WHERE code > ? AND (? IS NULL OR state = ?) ORDER BY code LIMIT ?"
        )))
        .bind(after_code.unwrap_or(""))
        .bind(state.map(AgencyState::as_str))
        .bind(state.map(AgencyState::as_str))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(Agency::try_from).collect()
    }
}
