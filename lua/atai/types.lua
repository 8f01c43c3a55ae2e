---@meta
--- atai.types: LuaLS (lua-language-server) annotations for atai's public API
-- and the shapes of what it returns, for completion and type hints in
-- Neovim and other editors (LuaLS reads it from the installed tree or the
-- plugin's lua/ folder). Nothing requires it at run time: it holds stubs.

---@alias atai.Status "PENDING"|"ADMITTED"|"RUNNING"|"COMPLETED"|"FAILED"|"PREEMPTED"|"CANCELLED"

---@alias atai.ErrorKind "auth"|"permission"|"not_found"|"conflict"|"invalid_request"|"too_large"|"rate_limited"|"server"|"http"|"timeout"|"network"|"decode"|"config"|"pending"|"cancelled"|"callback"|"io"|"integrity"

---@class atai.InputProgress
---@field pending integer
---@field processing integer
---@field completed integer
---@field failed integer

---@class atai.Job
---@field id string
---@field org_id string
---@field name string
---@field pipeline_type string   "batch" or "training"
---@field pipeline_key string
---@field pipeline_version string
---@field status atai.Status
---@field parameters table<string, any>
---@field retry_count integer
---@field preemption_count integer
---@field queue_position? integer  absent when not queued
---@field queue_depth? integer
---@field input_progress? atai.InputProgress  absent on write-path responses
---@field created_at string
---@field updated_at string
---@field started_at? string
---@field completed_at? string
---@field failed_at? string
---@field cancelled_at? string
---@field error? table

---@class atai.Error
---@field kind atai.ErrorKind
---@field status? integer        HTTP status, when there was a response
---@field message string
---@field code? string           the API's error code
---@field error_uid? string      quote it to Archetype AI support
---@field suggestion? string
---@field errors? table[]        every entry of the API's `errors` array
---@field body? string           at most 4 KiB of the response body
---@field retryable boolean      whether another attempt could succeed
---@field attempts? integer      attempts made, retries included
---@field method? string
---@field url? string             the request URL (a presigned one: query as "?REDACTED")
---@field curl_code? integer     libcurl's CURLcode, for transport errors
---@field retry_after? number    seconds asked by Retry-After
---@field job? atai.Job          wait_job timeout: the last job seen
---@field elapsed? number        seconds from the first attempt to the end
---@field upload_id? string      a resumable upload that failed: its id (kept, not aborted)
---@field resumable? boolean     true: run the same upload again with opts.resume = true
---@field traceback? string      kind "callback": where the atai.run function raised

---@class atai.Options
---@field api_key? string            default: $ATAI_API_KEY
---@field endpoint? string           default: $ATAI_API_ENDPOINT or https://api.u1.archetypeai.app/v0.5
---@field timeout? number            seconds per attempt (60)
---@field connect_timeout? number    seconds (10)
---@field max_retries? integer       retries of a retryable failure (2)
---@field retry_backoff? number      first backoff delay in seconds (0.5)
---@field retry_backoff_max? number  longest backoff delay (8)
---@field ca_file? string            CA bundle to verify the server with
---@field ca_path? string            directory of CA certificates
---@field proxy? string              proxy URL
---@field user_agent? string         prepended to atai's User-Agent
---@field max_response_bytes? integer  body size cap (64 MiB)
---@field max_concurrency? integer   transfers in flight at once (16)
---@field max_pages? integer         pages one each_* iteration fetches at most (10000)
---@field on_retry? fun(info: atai.RetryInfo)
---@field on_exchange? fun(info: atai.ExchangeInfo)  after each HTTP attempt

---@class atai.ExchangeInfo
---@field method string
---@field url string         a presigned URL's query shows as "?REDACTED"
---@field path string        the URL's path and query (a presigned one's: "?REDACTED")
---@field status? integer    when a response came
---@field kind? atai.ErrorKind  when the attempt failed
---@field seconds number     how long the attempt took
---@field attempt integer

--- A request (or operation) in flight: returned by every client.async method.
---@class atai.Handle
local Handle = {}

---@return boolean
function Handle:done() end

--- Once done, what the blocking method returns; before, nil and a "pending" error.
---@return any, any
function Handle:result() end

--- Drives the engine until done (or `seconds`: then nil, "pending" error).
---@param seconds? number
---@return any, any
function Handle:wait(seconds) end

--- Aborts it: its result becomes nil and a "cancelled" error.
function Handle:cancel() end

--- Calls fn once with the results, from poll/wait.
---@param fn fun(...: any)
---@return atai.Handle
function Handle:on_done(fn) end

--- Inside atai.run: yields until done; elsewhere wait().
---@return any, any
function Handle:await() end

--- client.async: the client's methods, returning handles.
---@class atai.Async
---@field get_job fun(self: atai.Async, id: string, opts?: table): atai.Handle
---@field request fun(self: atai.Async, method: string, path: string, opts?: atai.RequestOptions): atai.Handle
---@field sleep fun(self: atai.Async, seconds: number): atai.Handle
---@field get_jobs fun(self: atai.Async, ids: string[], opts?: table): atai.Handle
---@field wait_job fun(self: atai.Async, id: string, opts?: atai.WaitOptions): atai.Handle
---@field wait_jobs fun(self: atai.Async, ids: string[], opts?: atai.WaitOptions): atai.Handle
---@field list_jobs fun(self: atai.Async, filter?: table): atai.Handle
---@field create_job fun(self: atai.Async, spec: atai.JobSpec): atai.Handle
---@field cancel_job fun(self: atai.Async, id: string): atai.Handle
---@field retry_job fun(self: atai.Async, id: string): atai.Handle
---@field delete_job fun(self: atai.Async, id: string): atai.Handle
---@field queue fun(self: atai.Async): atai.Handle
---@field job_events fun(self: atai.Async, id: string, filter?: table): atai.Handle
---@field job_progress fun(self: atai.Async, id: string, filter?: table): atai.Handle
---@field job_inputs fun(self: atai.Async, id: string, filter?: table): atai.Handle
---@field job_inputs_progress fun(self: atai.Async, id: string, filter?: table): atai.Handle
---@field job_input_counts fun(self: atai.Async, id: string, filter?: table): atai.Handle
---@field job_input_traces fun(self: atai.Async, id: string, opts?: table): atai.Handle
---@field job_outputs fun(self: atai.Async, id: string, filter?: table): atai.Handle
---@field pipelines fun(self: atai.Async, filter?: table): atai.Handle
---@field pipeline fun(self: atai.Async, id: string): atai.Handle
---@field pipeline_schema fun(self: atai.Async, id: string): atai.Handle
---@field find_pipeline fun(self: atai.Async, key: string, filter?: table): atai.Handle

---@class atai.RetryInfo
---@field attempt integer   the attempt that failed
---@field delay number      seconds before the next one
---@field kind atai.ErrorKind
---@field status? integer
---@field method string
---@field url string        (a presigned one without its query: "?REDACTED")

---@class atai.RequestOptions
---@field query? table<string, string|number|boolean|(string|number)[]>
---@field body? any          encoded as JSON
---@field headers? table<string, string>
---@field idempotent? boolean  retry like a GET (default: only GET and HEAD)
---@field timeout? number      seconds per attempt, for this call
---@field max_retries? integer

---@class atai.Meta
---@field status integer
---@field headers table<string, string>  lowercase names
---@field attempts integer

---@class atai.Page
---@field total integer
---@field offset integer
---@field limit integer
---@field job_id? string

---@class atai.JobPage: atai.Page
---@field jobs atai.Job[]

---@class atai.JobSpec
---@field name string
---@field pipeline_type string
---@field pipeline_key string
---@field pipeline_version? string
---@field inputs? table<string, {file_id: string, metadata?: table}[]>
---@field parameters? table<string, {parallelism?: integer, config?: table}>

---@class atai.WaitOptions
---@field interval? number       first pause between polls, seconds (2)
---@field max_interval? number   longest pause (30)
---@field timeout? number        give up after this many seconds (none)
---@field on_update? fun(job: atai.Job)
---@field on_error? fun(err: atai.Error)

---@class atai.Progress
---@field done integer
---@field total integer
---@field percent number
---@field completed integer
---@field failed integer
---@field processing integer
---@field pending integer

---@class atai.Traces
---@field not_modified boolean
---@field etag? string
---@field job_id? string
---@field bucket_seconds? number
---@field latest_event_at? string
---@field points? table[]

---@alias atai.Iterator<T> fun(): T|false|nil, atai.Error?

---@class atai.Client
---@field async atai.Async  the non-blocking twins of the methods
local Client = {}

--- Does all ready work, delivers completions and callbacks; waits up to
--- `seconds` (default 0) for something to complete.
---@param seconds? number
---@param opts? {budget?: number}  stop delivering after this many seconds
---@return integer completed
function Client:poll(seconds, opts) end

---@return integer  handles started and not yet completed
function Client:pending() end

---@return number|nil  seconds until poll is next needed; nil when idle
function Client:timeout() end

---@return table<integer, "r"|"w"|"rw">  the sockets libcurl wants watched
function Client:sockets() end

--- Fetches jobs concurrently: jobs[i] is the job of ids[i] or nil, errs[i] its error.
---@param ids string[]
---@param opts? {timeout?: number, max_retries?: integer}
---@return table<integer, atai.Job> jobs
---@return table<integer, atai.Error> errs
function Client:get_jobs(ids, opts) end

--- Waits for every job to be terminal, polling them concurrently.
---@param ids string[]
---@param opts? atai.WaitOptions  timeout bounds the whole call
---@return table<integer, atai.Job> jobs
---@return table<integer, atai.Error> errs
function Client:wait_jobs(ids, opts) end

---@param id string
---@param opts? {timeout?: number, max_retries?: integer}  for this call only
---@return atai.Job|nil job
---@return atai.Error|nil err
function Client:get_job(id, opts) end

---@param method "GET"|"POST"|"PUT"|"PATCH"|"DELETE"|"HEAD"
---@param path string   under the endpoint, e.g. "/batch/jobs"
---@param opts? atai.RequestOptions
---@return any|nil body
---@return atai.Meta|atai.Error meta_or_err
function Client:request(method, path, opts) end

--- Frees the connection and buffers; also on garbage collection and `<close>`.
function Client:close() end

---@param filter? {pipeline_type?: string, status?: atai.Status, q?: string, offset?: integer, limit?: integer}
---@return atai.JobPage|nil page
---@return atai.Error|nil err
function Client:list_jobs(filter) end

---@param filter? {pipeline_type?: string, status?: atai.Status, q?: string, offset?: integer, limit?: integer}
---@return atai.Iterator<atai.Job>
function Client:each_job(filter) end

---@param spec atai.JobSpec
---@return atai.Job|nil job
---@return atai.Error|nil err
function Client:create_job(spec) end

---@param id string
---@return {id: string, status: atai.Status, cancelled_at?: string}|atai.Job|nil result
---@return atai.Error|nil err
function Client:cancel_job(id) end

---@param id string
---@return {id: string, status: atai.Status, retry_count?: integer}|atai.Job|nil result
---@return atai.Error|nil err
function Client:retry_job(id) end

---@param id string
---@return {id: string, deleted: boolean}|nil result
---@return atai.Error|nil err
function Client:delete_job(id) end

---@return {queues: {pipeline_type: string, depth: integer}[]}|nil queue
---@return atai.Error|nil err
function Client:queue() end

---@param id string
---@param filter? {level?: string, event_type?: string, input_id?: string, offset?: integer, limit?: integer}
---@return atai.Page|nil page  with `events`
---@return atai.Error|nil err
function Client:job_events(id, filter) end

---@param id string
---@param filter? {level?: string, event_type?: string, input_id?: string, offset?: integer, limit?: integer}
---@return atai.Iterator<table>
function Client:each_event(id, filter) end

---@param id string
---@param filter? {kind?: string, input_id?: string, offset?: integer, limit?: integer}
---@return atai.Page|nil page  with `entries`
---@return atai.Error|nil err
function Client:job_progress(id, filter) end

---@param id string
---@param filter? {kind?: string, input_id?: string, offset?: integer, limit?: integer}
---@return atai.Iterator<table>
function Client:each_progress(id, filter) end

---@param id string
---@param filter? {port_name?: string, status?: string, offset?: integer, limit?: integer}
---@return atai.Page|nil page  with `inputs`
---@return atai.Error|nil err
function Client:job_inputs(id, filter) end

---@param id string
---@param filter? {port_name?: string, status?: string, offset?: integer, limit?: integer}
---@return atai.Iterator<table>
function Client:each_input(id, filter) end

---@param id string
---@param filter? {port_name?: string, status?: string|string[], order?: "asc"|"desc", offset?: integer, limit?: integer}
---@return atai.Page|nil page  with `items`
---@return atai.Error|nil err
function Client:job_inputs_progress(id, filter) end

---@param id string
---@param filter? {port_name?: string, status?: string|string[], order?: "asc"|"desc", offset?: integer, limit?: integer}
---@return atai.Iterator<table>
function Client:each_input_progress(id, filter) end

---@param id string
---@param filter? {port_name?: string}
---@return {job_id: string, pending: integer, processing: integer, completed: integer, failed: integer}|nil counts
---@return atai.Error|nil err
function Client:job_input_counts(id, filter) end

---@param id string
---@param opts? {buckets?: integer, etag?: string}
---@return atai.Traces|nil traces
---@return atai.Error|nil err
function Client:job_input_traces(id, opts) end

---@param id string
---@param filter? {port_name?: string, input_id?: string, offset?: integer, limit?: integer}
---@return atai.Page|nil page  with `outputs`
---@return atai.Error|nil err
function Client:job_outputs(id, filter) end

---@param id string
---@param filter? {port_name?: string, input_id?: string, offset?: integer, limit?: integer}
---@return atai.Iterator<table>
function Client:each_output(id, filter) end

---@param filter? {pipeline_type?: string, visibility?: string, status?: string, offset?: integer, limit?: integer}
---@return atai.Page|nil page  with `pipelines`
---@return atai.Error|nil err
function Client:pipelines(filter) end

---@param filter? {pipeline_type?: string, visibility?: string, status?: string, offset?: integer, limit?: integer}
---@return atai.Iterator<table>
function Client:each_pipeline(filter) end

---@param id string   a pipeline id (ppl_...), not its key
---@return table|nil pipeline
---@return atai.Error|nil err
function Client:pipeline(id) end

---@param id string
---@return table|nil schema
---@return atai.Error|nil err
function Client:pipeline_schema(id) end

---@param key string  a pipeline_key such as "machine-state-classification"
---@param filter? {pipeline_type?: string, visibility?: string, status?: string, limit?: integer}
---@return table|nil pipeline
---@return atai.Error|nil err
function Client:find_pipeline(key, filter) end

---@param id string
---@param opts? atai.WaitOptions
---@return atai.Job|nil job  the terminal job, whatever its status
---@return atai.Error|nil err
function Client:wait_job(id, opts) end

---@class atai.TransferProgress  what on_progress gets, uploads and downloads alike
---@field bytes_done integer
---@field bytes_total? integer     nil while unknown
---@field files_done integer
---@field files_total integer      1 for an upload
---@field bytes_per_second number  moving average over the last 5 s (0 at first)
---@field upload_id? string        a multipart upload's id, once initiate answered

---@class atai.UploadOptions
---@field name? string                 the file's name, its id (default: the base name)
---@field file_type? string            default from the extension (text/csv, application/json, ...)
---@field on_progress? fun(p: atai.TransferProgress)
---@field multipart_threshold? integer from this size (bytes) on, the multipart flow (100 MiB)
---@field concurrency? integer         parts in flight at once (4)
---@field stall_timeout? number        seconds without a byte before an attempt fails (60)
---@field refresh_margin? number       seconds: a part URL expiring sooner is refreshed before its PUT (300)
---@field resume? boolean              a resumable upload (upload_file only; multipart, checkpointed, kept on failure)

---@class atai.Base64Options
---@field file_type? string            default from the name's extension
---@field on_progress? fun(p: atai.TransferProgress)
---@field stall_timeout? number        seconds without a byte before an attempt fails (60)

---@class atai.UploadResult
---@field file_id string     the file's name: what a job's inputs reference
---@field file_uid? string
---@field num_bytes integer
---@field route "simple"|"multipart"|"base64"
---@field is_valid? boolean  (simple, base64) as the API says
---@field is_resume? boolean (multipart) true: a resumable upload went on where an earlier run stopped
---@field upload_id? string  (multipart)
---@field file_name? string  (multipart)
---@field file_status? string (multipart) "Registered"

---@class atai.DownloadOptions
---@field on_progress? fun(p: atai.TransferProgress)
---@field max_bytes? integer      refuse a body larger than this (too_large)
---@field num_bytes? integer      the size the file must have (0 to 2^52; a longer body stops at once: too_large)
---@field stall_timeout? number   the low-speed window in seconds (60; whole seconds)
---@field min_bytes_per_second? integer slower than this over the window fails as timeout (1024)
---@field max_seconds? number     wall time of the file, retries included (1 to 604800; none): timeout
---@field mode? integer|string    permission bits: 0 to 511, or an octal string "0600" (a Lua literal 0600 is decimal); default 0666 less the umask

---@class atai.OutputsOptions
---@field concurrency? integer    files in flight at once (8)
---@field port_name? string
---@field input_id? string
---@field on_progress? fun(p: atai.TransferProgress)
---@field max_bytes? integer      per file
---@field stall_timeout? number   the low-speed window in seconds (60; whole seconds)
---@field min_bytes_per_second? integer slower than this over the window fails as timeout (1024)
---@field max_seconds? number     wall time per file, retries and URL refreshes included (1 to 604800; none): timeout
---@field mode? integer|string    permission bits of the files: 0 to 511, or an octal string "0600"; default 0666 less the umask

---@class atai.DownloadFailure
---@field output table        the output, as listed
---@field err atai.Error
---@field path string         where it would have gone

---@class atai.DownloadSummary
---@field downloaded integer
---@field skipped integer     already complete (size = data.num_bytes)
---@field failed atai.DownloadFailure[]
---@field bytes integer       bytes downloaded by this call

---@param path string
---@param opts? atai.UploadOptions
---@return atai.UploadResult|nil file
---@return atai.Error|nil err
function Client:upload_file(path, opts) end

---@param name string   the file's name, its id
---@param data string   the content
---@param opts? atai.UploadOptions  (but name)
---@return atai.UploadResult|nil file
---@return atai.Error|nil err
function Client:upload_data(name, data, opts) end

--- POST /files/base64: the file at `path` stored as `name`, base64-encoded
--- while it is sent; nil, err (too_large) when the encoding would pass
--- 512,000,000 bytes.
---@param name string   the file's name, its id
---@param path string   the local file
---@param opts? atai.Base64Options
---@return atai.UploadResult|nil file
---@return atai.Error|nil err
function Client:upload_base64(name, path, opts) end

---@return table|nil files  GET /files/metadata, as decoded
---@return atai.Error|nil err
function Client:files_list() end

---@param id string  a file id (its name)
---@return table|nil metadata  GET /files/metadata/{id}, as decoded
---@return atai.Error|nil err
function Client:file_info(id) end

---@param id string
---@return table|nil body  as decoded
---@return atai.Error|nil err
function Client:delete_file(id) end

---@param id string
---@param dest string  file path (written under a temporary name, then renamed)
---@param opts? atai.DownloadOptions
---@return true|nil ok
---@return atai.Error|nil err
function Client:download_file(id, dest, opts) end

---@param url string   a presigned URL (https)
---@param dest string
---@param opts? atai.DownloadOptions
---@return true|nil ok
---@return atai.Error|nil err
function Client:download(url, dest, opts) end

---@param job_id string
---@param dir string   made if needed
---@param opts? atai.OutputsOptions
---@return atai.DownloadSummary|nil summary  nil when listing the outputs fails
---@return atai.Error|nil err
function Client:download_outputs(job_id, dir, opts) end

---@class atai
---@field VERSION string
---@field null lightuserdata  a JSON null inside an array
---@field PENDING "PENDING"
---@field ADMITTED "ADMITTED"
---@field RUNNING "RUNNING"
---@field COMPLETED "COMPLETED"
---@field FAILED "FAILED"
---@field PREEMPTED "PREEMPTED"
---@field CANCELLED "CANCELLED"
---@field STATUSES atai.Status[]
local atai = {}

---@param opts? atai.Options
---@return atai.Client
function atai.new(opts) end

---@param opts atai.Options
function atai.configure(opts) end

---@return atai.Client
function atai.default_client() end

---@param status_or_job atai.Status|atai.Job
---@return boolean
function atai.is_terminal(status_or_job) end

---@param status_or_job atai.Status|atai.Job
---@return boolean
function atai.succeeded(status_or_job) end

---@param job atai.Job
---@return atai.Progress|nil
function atai.progress(job) end

---@generic T
---@param iterator fun(): T|false|nil, atai.Error?
---@return T[]|nil items
---@return atai.Error|nil err
function atai.collect(iterator) end

---@param t? table
---@return table  encodes as a JSON array even when empty
function atai.array(t) end

---@param v any
---@return boolean
function atai.is_error(v) end

--- JSON text with object keys sorted; raises on values JSON cannot hold.
---@param value any
---@return string
function atai.json_encode(value) end

--- Runs fn(...) as a coroutine in which blocking calls await; returns its handle.
---@param fn fun(...: any): ...
---@return atai.Handle
function atai.run(fn, ...) end

--- Waits for handles of any clients: values[i], errs[i] from handles[i].
---@param handles atai.Handle[]
---@param seconds? number
---@return table values
---@return table<integer, atai.Error> errs
function atai.wait_all(handles, seconds) end

---@return integer
function atai.pending() end

---@return number|nil
function atai.timeout() end

--- The default client's async view, called with a dot: atai.async.get_job(id).
---@type table<string, fun(...: any): atai.Handle>
atai.async = {}

-- The default-client twins of every atai.Client method.
atai.get_job = Client.get_job --[[@as fun(id: string, opts?: table): atai.Job|nil, atai.Error|nil]]
atai.request = Client.request --[[@as fun(method: string, path: string, opts?: atai.RequestOptions): any, atai.Meta|atai.Error]]
atai.list_jobs = Client.list_jobs --[[@as fun(filter?: table): atai.JobPage|nil, atai.Error|nil]]
atai.each_job = Client.each_job --[[@as fun(filter?: table): atai.Iterator<atai.Job>]]
atai.create_job = Client.create_job --[[@as fun(spec: atai.JobSpec): atai.Job|nil, atai.Error|nil]]
atai.cancel_job = Client.cancel_job --[[@as fun(id: string): table|nil, atai.Error|nil]]
atai.retry_job = Client.retry_job --[[@as fun(id: string): table|nil, atai.Error|nil]]
atai.delete_job = Client.delete_job --[[@as fun(id: string): table|nil, atai.Error|nil]]
atai.queue = Client.queue --[[@as fun(): table|nil, atai.Error|nil]]
atai.job_events = Client.job_events --[[@as fun(id: string, filter?: table): atai.Page|nil, atai.Error|nil]]
atai.each_event = Client.each_event --[[@as fun(id: string, filter?: table): atai.Iterator<table>]]
atai.job_progress = Client.job_progress --[[@as fun(id: string, filter?: table): atai.Page|nil, atai.Error|nil]]
atai.each_progress = Client.each_progress --[[@as fun(id: string, filter?: table): atai.Iterator<table>]]
atai.job_inputs = Client.job_inputs --[[@as fun(id: string, filter?: table): atai.Page|nil, atai.Error|nil]]
atai.each_input = Client.each_input --[[@as fun(id: string, filter?: table): atai.Iterator<table>]]
atai.job_inputs_progress = Client.job_inputs_progress --[[@as fun(id: string, filter?: table): atai.Page|nil, atai.Error|nil]]
atai.each_input_progress = Client.each_input_progress --[[@as fun(id: string, filter?: table): atai.Iterator<table>]]
atai.job_input_counts = Client.job_input_counts --[[@as fun(id: string, filter?: table): table|nil, atai.Error|nil]]
atai.job_input_traces = Client.job_input_traces --[[@as fun(id: string, opts?: table): atai.Traces|nil, atai.Error|nil]]
atai.job_outputs = Client.job_outputs --[[@as fun(id: string, filter?: table): atai.Page|nil, atai.Error|nil]]
atai.each_output = Client.each_output --[[@as fun(id: string, filter?: table): atai.Iterator<table>]]
atai.pipelines = Client.pipelines --[[@as fun(filter?: table): atai.Page|nil, atai.Error|nil]]
atai.each_pipeline = Client.each_pipeline --[[@as fun(filter?: table): atai.Iterator<table>]]
atai.pipeline = Client.pipeline --[[@as fun(id: string): table|nil, atai.Error|nil]]
atai.pipeline_schema = Client.pipeline_schema --[[@as fun(id: string): table|nil, atai.Error|nil]]
atai.find_pipeline = Client.find_pipeline --[[@as fun(key: string, filter?: table): table|nil, atai.Error|nil]]
atai.wait_job = Client.wait_job --[[@as fun(id: string, opts?: atai.WaitOptions): atai.Job|nil, atai.Error|nil]]
atai.get_jobs = Client.get_jobs --[[@as fun(ids: string[], opts?: table): table, table]]
atai.wait_jobs = Client.wait_jobs --[[@as fun(ids: string[], opts?: atai.WaitOptions): table, table]]
atai.poll = Client.poll --[[@as fun(seconds?: number, opts?: {budget?: number}): integer]]
atai.upload_file = Client.upload_file --[[@as fun(path: string, opts?: atai.UploadOptions): atai.UploadResult|nil, atai.Error|nil]]
atai.upload_data = Client.upload_data --[[@as fun(name: string, data: string, opts?: atai.UploadOptions): atai.UploadResult|nil, atai.Error|nil]]
atai.upload_base64 = Client.upload_base64 --[[@as fun(name: string, path: string, opts?: atai.Base64Options): atai.UploadResult|nil, atai.Error|nil]]
atai.files_list = Client.files_list --[[@as fun(): table|nil, atai.Error|nil]]
atai.file_info = Client.file_info --[[@as fun(id: string): table|nil, atai.Error|nil]]
atai.delete_file = Client.delete_file --[[@as fun(id: string): table|nil, atai.Error|nil]]
atai.download_file = Client.download_file --[[@as fun(id: string, dest: string, opts?: atai.DownloadOptions): true|nil, atai.Error|nil]]
atai.download = Client.download --[[@as fun(url: string, dest: string, opts?: atai.DownloadOptions): true|nil, atai.Error|nil]]
atai.download_outputs = Client.download_outputs --[[@as fun(job_id: string, dir: string, opts?: atai.OutputsOptions): atai.DownloadSummary|nil, atai.Error|nil]]

---@class atai.UvOptions
---@field on_error? fun(err: any)  a callback's error (default: Neovim's error reporting, or stderr with a traceback under luv)

--- atai.uv: drives a client from a libuv loop (Neovim's vim.uv or vim.loop, or luv).
---@class atai.uv
local atai_uv = {}

--- Drives `client` (nil: the default client, and the new one after each
--- atai.configure) from the libuv loop `uv`: its sockets and timers are
--- watched by the loop, callbacks run from vim.schedule in Neovim. Returns
--- detach(), which stops and closes every handle it made. Raises when the
--- client is already attached.
---@param client atai.Client|nil
---@param uv table  vim.uv, vim.loop or require("luv")
---@param opts? atai.UvOptions
---@return fun() detach
function atai_uv.attach(client, uv, opts) end

--- The streams of a command line run in-process (file-like objects: write
--- and flush return a true value, or nil, message, errno).
---@class atai.CliStreams
---@field stdin? file*|table   default io.stdin
---@field stdout? file*|table  default io.stdout
---@field stderr? file*|table  default io.stderr
---@field getenv? fun(name: string): string|nil  default os.getenv

--- atai.cli: the command line as a module (bin/atai runs it).
---@class atai.cli
local atai_cli = {}

--- Runs one command line (`argv`: the words after the program's name, as
--- `arg` holds them) and returns its exit code (doc/cli.md, "Exit codes"); never
--- calls os.exit.
---@param argv string[]
---@param io? atai.CliStreams
---@return integer code
function atai_cli.run(argv, io) end

---@class atai.NvimConfig  vim.g.atai (:help atai-config); checked on first use
---@field endpoint? string           default: $ATAI_API_ENDPOINT or the production endpoint
---@field poll_interval? number      seconds between polls of jobs, job and wait (default 2)
---@field notify? boolean|fun(msg: string, level: integer, opts: table): any  false: errors only; or a vim.notify-like function
---@field max_concurrency? integer   requests in flight at once (default 16)
---@field api_key_cmd? string[]      argv whose stdout is the key, run once per Neovim (never a key in the config)
---@field timeout? number
---@field connect_timeout? number
---@field max_retries? integer
---@field retry_backoff? number
---@field retry_backoff_max? number
---@field max_response_bytes? integer
---@field ca_file? string
---@field ca_path? string
---@field proxy? string
---@field user_agent? string

--- atai.nvim: the code behind :Atai (plugin/atai.lua) and its Lua API
--- (:help atai-lua). Requiring it loads no other atai module.
---@class atai.nvim
---@field event atai.Job|nil  Neovim 0.7: the job while a User AtaiJobUpdate/AtaiJobDone autocommand runs (0.8+: ev.data)
local atai_nvim = {}

--- Follows job `id` every poll_interval until it is terminal: User
--- AtaiJobUpdate on each change, User AtaiJobDone at the end, and
--- on_update(job, done). Watching an id twice adds the listener.
---@param id string
---@param on_update? fun(job: atai.Job, done: boolean)
function atai_nvim.watch(id, on_update) end

--- Stops following job `id` (nothing when it is not watched).
---@param id string
function atai_nvim.unwatch(id) end

--- "atai 2▶ 45%" (jobs watched, their mean progress), "" when nothing is
--- watched: from state already held, no I/O (for 'statusline').
---@return string
function atai_nvim.statusline() end

--- The ids being watched, sorted.
---@return string[]
function atai_nvim.watched() end

--- The job ids seen since Neovim started, oldest first (what :Atai completes).
---@return string[]
function atai_nvim.seen_ids() end

--- Opens the scratch buffer atai://jobs (atai://jobs/STATUS with a filter).
---@param status? atai.Status
---@return integer|nil bufnr
function atai_nvim.open_jobs(status) end

--- Opens atai://job/ID for the job id under the cursor.
function atai_nvim.open_job_under_cursor() end

--- vim.notify (or vim.g.atai.notify) with the "atai: " prefix and title.
---@param msg string
---@param level? integer  vim.log.levels
---@param opts? table
---@return any record  what the notify function returned (nvim-notify: a record to replace)
function atai_nvim.notify(msg, level, opts) end

--- The :Atai command's handler (opts as nvim_create_user_command gives).
---@param opts {fargs: string[]}
function atai_nvim.command(opts) end

--- Completion of :Atai's arguments.
---@param arglead string
---@param cmdline string
---@param cursor integer
---@return string[]
function atai_nvim.complete(arglead, cmdline, cursor) end

--- atai.health: :checkhealth atai.
---@class atai.health
local atai_health = {}

--- Runs the checks (called by :checkhealth atai).
function atai_health.check() end

return atai
