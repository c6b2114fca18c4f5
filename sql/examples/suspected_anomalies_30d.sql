-- Which KOLs show suspected abnormal follower growth (疑似异常涨粉) in their last 30 days, strongest first?
-- Suspicions only: a viral note can look like a bought batch; open the KOL's pgy.kol_daily rows before acting.
SELECT kol_id, label, date_key, rule, verdict, observed, round(baseline::numeric) AS baseline,
       round(score::numeric, 2) AS score, related_date, summary
  FROM pgy.kol_fans_anomaly_latest
 ORDER BY rule, score DESC, date_key DESC;
