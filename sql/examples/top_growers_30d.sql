-- Which tracked KOLs gained the most followers over the last 30 days (absolute and relative)?
SELECT kol_id, label, latest_date, total_fans, growth_30d, round((growth_30d_rate * 100)::numeric, 2) AS growth_30d_pct
  FROM pgy.kol_latest
 WHERE tracked AND growth_30d IS NOT NULL
 ORDER BY growth_30d DESC
 LIMIT 20;
