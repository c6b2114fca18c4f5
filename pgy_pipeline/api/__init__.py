"""Just One API client for the Pugongying follower-trend endpoints.

One concern per module: `endpoints` (paths, parameters, window choice), `parse` (envelope and data
validation into TrendPoints), `policy` (business code / HTTP status → action), `redact` (keeping the
token out of every text), `ratelimit` (the client-wide gate that slows everyone down on 302/429) and
`client` (the pooled HTTP session, retries and backoff).
"""
