-- wrk script of bench/ingest_wrk.sh: POSTs the body in $BODY_FILE to the request path with the
-- write key in $AUTH; $DELAY_MS paces each connection (0: as fast as possible).
local f = assert(io.open(os.getenv("BODY_FILE"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = os.getenv("AUTH")
local pause = tonumber(os.getenv("DELAY_MS") or "0")
function delay()
  return pause
end
