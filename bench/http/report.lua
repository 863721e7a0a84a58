-- What the load scripts share: counting answers by status and printing
-- wrk's error counts in one line the harnesses grep. Loaded with dofile
-- from the repository root, where the harnesses run wrk.
local statuses = {}
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  io.write(string.format("errors: connect %d, read %d, write %d, status %d, timeout %d\n",
    summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.status, summary.errors.timeout))
end
