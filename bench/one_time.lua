-- wrk script: POST to PATH_TO_HIT one line of ONE_TIME_FILE per request, each line used once
-- (bench/one_time_jwts.py writes them: signed client assertions and DPoP proofs, whose jti the
-- server accepts only once). A line is the request body, or with ONE_TIME_HEADER set, that
-- header's value, the body then being BODY. AUTH, when not empty, is the Authorization header.
-- Thread k of WRK_THREADS (wrk's -t) takes lines k+1, k+1+n, ..., so no two threads send the
-- same line. Past the last line a thread starts again, and the server refuses the repeats as
-- replays: non-2xx answers; done() says so.

local threads = {}
local count = 0

function setup(thread)
   thread:set("id", count)
   count = count + 1
   table.insert(threads, thread)
end

function init(args)
   local stride = tonumber(os.getenv("WRK_THREADS") or "1")
   lines = {}
   local index = 0
   for line in io.lines(os.getenv("ONE_TIME_FILE")) do
      if index % stride == id then
         lines[#lines + 1] = line
      end
      index = index + 1
   end
   if #lines == 0 then
      error("no lines for thread " .. id .. " in " .. os.getenv("ONE_TIME_FILE"))
   end
   line_count = #lines
   path = os.getenv("PATH_TO_HIT")
   header = os.getenv("ONE_TIME_HEADER")
   if header == "" then header = nil end
   body = os.getenv("BODY")
   headers = { ["Content-Type"] = os.getenv("CONTENT_TYPE") or "application/x-www-form-urlencoded" }
   local auth = os.getenv("AUTH")
   if auth and auth ~= "" then headers["Authorization"] = auth end
   cursor = 0
   wrapped = 0
end

function request()
   cursor = cursor + 1
   if cursor > #lines then
      cursor = 1
      wrapped = wrapped + 1
   end
   if header then
      headers[header] = lines[cursor]
      return wrk.format("POST", path, headers, body)
   end
   return wrk.format("POST", path, headers, lines[cursor])
end

function done(summary, latency, requests)
   for _, thread in ipairs(threads) do
      local times = thread:get("wrapped") or 0
      if times > 0 then
         io.stderr:write(string.format(
            "one_time.lua: thread %d ran out of its %d lines (%d times): repeats were replays\n",
            thread:get("id"), thread:get("line_count"), times))
      end
   end
end
