-- spec/tls_spec.lua: TLS verification is always on; ca_file adds trust, never
-- removes checks. Uses `openssl s_server` on 127.0.0.1 with a throw-away
-- self-signed certificate for 127.0.0.1 only.
local atai = require("atai")
local socket = require("socket")
local util = require("spec.support.util")
local free_port, sh = util.free_port, util.sh

describe("TLS", function()
  local dir, cert, port, pid

  setup(function()
    dir = os.tmpname()
    os.remove(dir)
    assert(sh("mkdir -p " .. dir))
    cert = dir .. "/cert.pem"
    assert(sh(("openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=atai-test "
      .. "-addext subjectAltName=IP:127.0.0.1 -keyout %s/key.pem -out %s 2>/dev/null"):format(dir, cert)))
    port = free_port()
    local p = assert(io.popen(("sh -c 'echo $$; exec openssl s_server -quiet -www -accept 127.0.0.1:%d "
      .. "-cert %s -key %s/key.pem' 2>/dev/null </dev/null & "):format(port, cert, dir)))
    pid = tonumber(p:read("*l"))
    p:close()
    -- wait until it accepts connections
    for _ = 1, 100 do
      local c = socket.connect("127.0.0.1", port)
      if c then c:close() break end
      socket.sleep(0.05)
    end
  end)

  teardown(function()
    if pid then sh("kill " .. pid .. " 2>/dev/null") end
    sh("rm -rf " .. dir)
  end)

  it("refuses a certificate it cannot verify, and does not retry that", function()
    local c = atai.new { endpoint = ("https://127.0.0.1:%d/v0.5"):format(port), api_key = "k" }
    local job, err = c:get_job("job_x")
    c:close()
    assert.is_nil(job)
    assert.are.equal("network", err.kind)
    assert.is_false(err.retryable)
    assert.are.equal(1, err.attempts)
    assert.is_truthy(err.message:lower():find("certificate", 1, true), err.message)
  end)

  it("trusts it with ca_file, and then speaks HTTP over TLS", function()
    local c = atai.new { endpoint = ("https://127.0.0.1:%d/v0.5"):format(port), api_key = "k", ca_file = cert }
    local job, err = c:get_job("job_x")
    c:close()
    -- s_server -www answers every request with an HTML status page: the
    -- TLS handshake succeeded, and the body is not a job.
    assert.is_nil(job)
    assert.are.equal("decode", err.kind)
    assert.are.equal(200, err.status)
  end)

  it("still checks the host name when the CA is trusted", function()
    local c = atai.new { endpoint = ("https://localhost:%d/v0.5"):format(port), api_key = "k", ca_file = cert }
    local _, err = c:get_job("job_x")
    c:close()
    assert.are.equal("network", err.kind)
    assert.is_false(err.retryable)
  end)

  it("reports a ca_file that cannot be read as a config error", function()
    local c = atai.new { endpoint = ("https://127.0.0.1:%d/v0.5"):format(port), api_key = "k",
      ca_file = dir .. "/missing.pem" }
    local _, err = c:get_job("job_x")
    c:close()
    assert.are.equal("config", err.kind)
    assert.is_false(err.retryable)
  end)

  it("trusts a hashed CA directory given as ca_path", function()
    assert(sh(("mkdir -p %s/cas && cp %s %s/cas/ && openssl rehash %s/cas"):format(dir, cert, dir, dir)))
    local c = atai.new { endpoint = ("https://127.0.0.1:%d/v0.5"):format(port), api_key = "k",
      ca_path = dir .. "/cas" }
    local _, err = c:get_job("job_x")
    c:close()
    assert.are.equal("decode", err.kind) -- the handshake succeeded
    assert.are.equal(200, err.status)
  end)
end)
