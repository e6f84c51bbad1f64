-- wrk script for the durable publish path: POST /api/events/publish/:instance with a publisher
-- token (RYZE_PUB); each event is queued for the instance's webhooks (fdatasync before the 202).
wrk.method = "POST"
wrk.headers["token"] = os.getenv("RYZE_PUB")
wrk.headers["Content-Type"] = "application/json"
local n = 0
request = function()
  n = n + 1
  return wrk.format(nil, nil, nil, '{"event":"message.exchange","data":{"message":{"text":"bench ' .. n .. '"}}}')
end
