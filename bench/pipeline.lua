-- wrk script: DEPTH requests per write (pipelining). Usage: wrk -s pipeline.lua URL -- DEPTH PATH
init = function(args)
	local depth = tonumber(args[1]) or 16
	local path = args[2] or "/plaintext"
	local r = {}
	for i = 1, depth do
		r[i] = wrk.format(nil, path)
	end
	req = table.concat(r)
end

request = function()
	return req
end
