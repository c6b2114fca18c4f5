-- How did the API answer over the last 30 days: calls, failures, billed calls and every code seen, per day?
SELECT fetch_date, calls, calls_ok, calls_failed, calls_not_attempted, billed_calls, kols_complete, codes
  FROM pgy.fetch_health
 WHERE fetch_date > (now() AT TIME ZONE 'Asia/Shanghai')::date - 30
 ORDER BY fetch_date DESC;
