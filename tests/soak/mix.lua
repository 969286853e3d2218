-- mix.lua — wrk script for tests/soak/soak.py.
--
-- soak.py writes the request catalogue (SOAK_CONF, a Lua file returning a list of variants:
-- raw request, expected status, body length / bytes / samples, expected headers) and runs
-- wrk with one connection per thread (-t N -c N). A thread's connection then sends its
-- requests and receives their responses in order, so a FIFO of what was sent tells
-- response() exactly which request each response answers. SOAK_ROLE picks the weights
-- (mix, pipe, big); SOAK_DEPTH requests are pipelined per write (wrk fixes the pipeline
-- depth from the first request() call, so every call returns the same number).
--
-- Every response whose status, length, bytes or headers differ from the expectation counts
-- in `bad`; done() prints one "SOAK ..." line per total, which soak.py parses.

local conf_path = os.getenv("SOAK_CONF")
local role = os.getenv("SOAK_ROLE") or "mix"
local depth = tonumber(os.getenv("SOAK_DEPTH") or "1")

local threads = {}
local nthreads = 0

function setup(thread)
	nthreads = nthreads + 1
	thread:set("tid", nthreads)
	table.insert(threads, thread)
end

-- per-thread state (each wrk thread has its own Lua state)
bad = 0          -- responses that did not match their request's expectation
lost = 0         -- requests sent but never answered before a reconnect
closes = 0       -- responses carrying Connection: close (none expected)
stray = 0        -- responses with no request outstanding
counts = {}      -- checked responses per kind
notes = ""       -- the first few mismatches, for the report

local pool = {}
local fifo, fhead, ftail = {}, 1, 0
local first_call = true
local nnotes = 0

local function note(s)
	if nnotes < 4 then
		notes = notes .. s .. " | "
		nnotes = nnotes + 1
	end
end

function init(args)
	math.randomseed(os.time() * 1000 + (tid or 0) * 7919)
	local V = dofile(conf_path)
	for _, v in ipairs(V) do
		local w = v.w[role] or 0
		if w > 0 then
			local body = v.body or ""
			if v.unit then -- n bytes: the unit repeated, cut to length
				body = string.sub(string.rep(v.unit, math.ceil(v.n / #v.unit)), 1, v.n)
			end
			v.req = v.head .. body
			if v.eq == "=" then
				v.eq = body
			end
			for _ = 1, w do
				pool[#pool + 1] = v
			end
		end
	end
end

function request()
	-- wrk calls request() once in thread 1 only to count the pipelined requests: that
	-- string is never sent, so it must not be expected
	local expect = not (first_call and tid == 1)
	first_call = false
	if expect and fhead <= ftail then
		-- a new write while answers are outstanding: the connection was re-opened
		lost = lost + (ftail - fhead + 1)
		fifo, fhead, ftail = {}, 1, 0
	end
	local parts = {}
	for k = 1, depth do
		local v = pool[math.random(#pool)]
		if expect then
			ftail = ftail + 1
			fifo[ftail] = v
		end
		parts[k] = v.req
	end
	return table.concat(parts)
end

local function hget(headers, name)
	for k, val in pairs(headers) do
		if string.lower(k) == name then
			return val
		end
	end
	return nil
end

local function check(v, status, headers, body)
	if status ~= v.status then
		return "status " .. status .. " (expected " .. v.status .. ")"
	end
	if v.len and #body ~= v.len then
		return "body length " .. #body .. " (expected " .. v.len .. ")"
	end
	if v.eq and body ~= v.eq then
		return "body bytes differ (length " .. #body .. ")"
	end
	if v.samples then
		for _, s in ipairs(v.samples) do
			if string.sub(body, s[1], s[1] + #s[2] - 1) ~= s[2] then
				return "body bytes differ at " .. s[1]
			end
		end
	end
	if v.hdr then
		for name, want in pairs(v.hdr) do
			local got = hget(headers, name)
			if want == false then
				if got ~= nil then
					return "unexpected header " .. name .. ": " .. got
				end
			elseif got == nil or string.sub(got, 1, #want) ~= want then
				return "header " .. name .. ": " .. tostring(got) .. " (expected " .. want .. ")"
			end
		end
	end
	return nil
end

function response(status, headers, body)
	if fhead > ftail then
		stray = stray + 1
		note("response " .. status .. " with no request outstanding")
		return
	end
	local v = fifo[fhead]
	fifo[fhead] = nil
	fhead = fhead + 1
	counts[v.kind] = (counts[v.kind] or 0) + 1
	local why = check(v, status, headers, body)
	if why then
		bad = bad + 1
		note(v.name .. ": " .. why)
	end
	local c = hget(headers, "connection")
	if c and string.find(string.lower(c), "close", 1, true) then
		closes = closes + 1
		note(v.name .. ": Connection: close")
		-- wrk re-opens the connection; what was pipelined behind is gone
		lost = lost + (ftail - fhead + 1)
		fifo, fhead, ftail = {}, 1, 0
	end
end

function done(summary, latency, requests)
	local e = summary.errors
	-- wrk counts every status > 399 as an "error": here those are the expected 404s and 416s
	io.write(string.format("SOAK wrk requests=%d connect=%d read=%d write=%d timeout=%d http4xx=%d\n",
		summary.requests, e.connect, e.read, e.write, e.timeout, e.status))
	local tot = {bad = 0, lost = 0, closes = 0, stray = 0}
	local kinds = {}
	for _, t in ipairs(threads) do
		for k, _ in pairs(tot) do
			tot[k] = tot[k] + (t:get(k) or 0)
		end
		local c = t:get("counts") or {}
		for k, n in pairs(c) do
			kinds[k] = (kinds[k] or 0) + n
		end
		local n = t:get("notes")
		if n and n ~= "" then
			io.write("SOAK note " .. n .. "\n")
		end
	end
	io.write(string.format("SOAK check bad=%d lost=%d closes=%d stray=%d\n",
		tot.bad, tot.lost, tot.closes, tot.stray))
	local line = "SOAK kinds"
	for k, n in pairs(kinds) do
		line = line .. " " .. k .. "=" .. n
	end
	io.write(line .. "\n")
end
