-- 0021: the pipeline's login appends to the audit trail and never rewrites it.
-- 0016 granted pgy_etl SELECT, INSERT, UPDATE and DELETE on every table. The code only ever inserts into the
-- revisions, the fetch log, the loaded marks and the raw archive, so a compromised or buggy pipeline login must not
-- be able to rewrite or erase them. Elsewhere UPDATE and DELETE stay only where the code uses them:
--   tracked_kol          INSERT ... ON CONFLICT DO UPDATE, UPDATE (deactivate, flag)      no DELETE (removal deactivates)
--   kol_fans_trend       INSERT, UPDATE (a restated num)                                   no DELETE
--   kol_fans_not_served  INSERT ... ON CONFLICT DO UPDATE, DELETE (a date served later)    all kept
--   kol_fans_anomaly     DELETE + INSERT (a rerun replaces its dates' rows)                no UPDATE
-- Tables later migrations create get 0016's default privileges; each states its own narrower grants.
REVOKE UPDATE, DELETE, TRUNCATE ON pgy.kol_fans_trend_revision, pgy.fetch_log, pgy.fetch_log_loaded, pgy.raw_response
    FROM pgy_etl;
REVOKE DELETE, TRUNCATE ON pgy.tracked_kol, pgy.kol_fans_trend FROM pgy_etl;
REVOKE UPDATE, TRUNCATE ON pgy.kol_fans_anomaly FROM pgy_etl;
