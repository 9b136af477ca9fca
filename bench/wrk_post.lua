-- wrk script: POST signed Twilio webhook forms, one pre-generated line ("signature\tbody") each.
-- Run with one thread (-t1): each wrk thread has its own Lua state and would repeat the lines.
local lines = {}
local i = 0

init = function(args)
  for line in io.lines(args[1]) do
    lines[#lines + 1] = line
  end
end

request = function()
  i = i + 1
  local line = lines[((i - 1) % #lines) + 1]
  local tab = string.find(line, "\t", 1, true)
  local headers = {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["X-Twilio-Signature"] = string.sub(line, 1, tab - 1),
  }
  return wrk.format("POST", "/whatsapp", headers, string.sub(line, tab + 1))
end

done = function(summary, latency, requests)
  io.write(string.format("BENCH requests=%d status_errors=%d socket_errors=%d\n",
    summary.requests, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
