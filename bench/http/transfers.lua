-- POST /v1/transfers between the two investors the harness created
-- (TOKEN_ID, FROM, TO from the environment), each request under an
-- Idempotency-Key no other request uses: the thread's number, the run's
-- start time and a counter (the warm-up and the measured run are separate
-- wrk processes).
local threads = {}

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  counter = 0
  run = nil
  body = '{"token_id":"' .. os.getenv("TOKEN_ID") .. '","from":"' .. os.getenv("FROM") ..
    '","to":"' .. os.getenv("TO") .. '","amount":"1"}'
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  run = run or tostring(os.time())
  counter = counter + 1
  -- wrk.format takes the given headers instead of wrk.headers (which hold
  -- the -H ones): copy them.
  local headers = {}
  for k, v in pairs(wrk.headers) do headers[k] = v end
  headers["Idempotency-Key"] = "bench-" .. run .. "-" .. tid .. "-" .. counter
  return wrk.format(nil, "/v1/transfers", headers, body)
end

dofile("bench/http/report.lua")
