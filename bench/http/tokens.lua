-- POST /v1/tokens with a ticker no other request uses: each wrk thread takes
-- its own leading letter, then the run's start time and a counter in base 36
-- (symbols are unique per organization among tokens that have not failed, and
-- the warm-up and the measured run are separate wrk processes).
local threads = {}
local letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

function setup(thread)
  thread:set("letter", letters:sub(#threads + 1, #threads + 1))
  table.insert(threads, thread)
end

function init(args)
  counter = 0
  run = nil
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

local digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
local function base36(n)
  local s = ""
  repeat
    local d = n % 36
    s = digits:sub(d + 1, d + 1) .. s
    n = math.floor(n / 36)
  until n == 0
  return s
end

function request()
  run = run or base36(os.time() % (36 ^ 4))
  counter = counter + 1
  local body = '{"name":"Bench Fund","symbol":"' .. letter .. run .. base36(counter) ..
    '","decimals":6,"compliance":{"country_allow":["FR","DE"],"max_holders":500}}'
  return wrk.format(nil, "/v1/tokens", nil, body)
end

dofile("bench/http/report.lua")
