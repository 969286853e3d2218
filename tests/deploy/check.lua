-- wrk script for tests/deploy: checks every response and paces the load.
--   wrk -s check.lua URL -- EXPECTED_BODY DELAY_MS
-- Every response whose status is not 2xx, or whose body is not EXPECTED_BODY, is counted;
-- done() prints one JSON line with the counts and wrk's socket errors. DELAY_MS between a
-- response and the next request on each connection keeps the load steady (connections x
-- 1000 / DELAY_MS requests/s at most) instead of taking every cycle of a shared machine.

local threads = {}

function setup(thread)
	table.insert(threads, thread)
end

function init(args)
	expected = args[1]
	pause = tonumber(args[2] or "0")
	responses = 0
	non2xx = 0
	badbody = 0
end

function delay()
	return pause
end

function response(status, headers, body)
	responses = responses + 1
	if status < 200 or status > 299 then
		non2xx = non2xx + 1
	elseif expected ~= nil and body ~= expected then
		badbody = badbody + 1
	end
end

function done(summary, latency, requests)
	local r, n, b = 0, 0, 0
	for _, t in ipairs(threads) do
		r = r + t:get("responses")
		n = n + t:get("non2xx")
		b = b + t:get("badbody")
	end
	local e = summary.errors
	io.write(string.format('{"event":"wrk","requests":%d,"responses":%d,"non2xx":%d,' ..
		'"badbody":%d,"connect":%d,"read":%d,"write":%d,"timeout":%d,"status":%d,' ..
		'"duration_us":%d}\n', summary.requests, r, n, b, e.connect, e.read, e.write,
		e.timeout, e.status, summary.duration))
end
