-- wrk script for the durable write path: each request replaces one instance's configuration.
wrk.method = "POST"
wrk.headers["token"] = os.getenv("RYZE_TOKEN")
local bodies = {
  '{"enabled":true,"events":["message.exchange","call.update"],"mediaBase64":false}',
  '{"enabled":true,"events":["group.flow"],"mediaBase64":true}',
}
local n = 0
request = function()
  n = n + 1
  return wrk.format(nil, nil, nil, bodies[n % 2 + 1])
end
