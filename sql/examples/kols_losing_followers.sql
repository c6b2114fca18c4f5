-- Which KOLs lost followers over the last 7 days, and on how many of those days did the total drop?
SELECT l.kol_id, l.label, l.total_fans, l.growth_7d,
       (SELECT count(*) FROM pgy.kol_daily d
         WHERE d.kol_id = l.kol_id AND d.date_key > l.latest_date - 7 AND d.total_change < 0) AS days_with_a_drop
  FROM pgy.kol_latest l
 WHERE l.growth_7d < 0
 ORDER BY l.growth_7d;
