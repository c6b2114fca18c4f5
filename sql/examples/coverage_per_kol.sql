-- How complete is each tracked KOL's history: first and last date, days stored, days missing in between?
SELECT k.kol_id, k.label,
       min(d.date_key) AS first_date, max(d.date_key) AS last_date,
       count(d.total_fans) AS days_with_total, count(d.new_fans) AS days_with_new_fans,
       (max(d.date_key) - min(d.date_key) + 1) - count(d.total_fans) AS days_missing_total
  FROM pgy.tracked_kol k
  LEFT JOIN pgy.kol_daily d ON d.kol_id = k.kol_id
 WHERE k.active
 GROUP BY k.kol_id, k.label
 ORDER BY days_missing_total DESC NULLS FIRST, k.kol_id;
