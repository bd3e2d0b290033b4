// The Lua scripts of the Redis backend (docs/tunnel.md). Each touches only keys passed in
// KEYS, all of one app (one hash tag), so a Redis Cluster can run them. They are run with
// EVALSHA and fall back to EVAL when the server answers NOSCRIPT (a restarted Redis has
// lost its script cache). Pure: texts and their SHA1.
#pragma once

#include <string>
#include <string_view>

namespace funcie::redis_backend {

struct script {
  std::string_view name;
  std::string_view text;
  std::string sha;  ///< SHA1 of text, lower-case hex, as EVALSHA wants it.
};

/// Lower-case hex SHA1 of `text` (what SCRIPT LOAD answers).
std::string sha1_hex(std::string_view text);

/// Assign (forwarder, docs/routing.md). KEYS: consumers, consumer:<S>, inbox:<S>, req:<id>,
/// claim:<id>. ARGV: mode, inbox item, ttl ms of the inbox, S's channel, "SPUBLISH" on a Redis
/// Cluster with sharded pub/sub (else PUBLISH), the request id, S. Drops expired sessions by
/// server TIME; returns 0 when none is left. Mode "presence" (KEYS: consumers) returns 1 then.
/// Mode "assign" returns -1 when the chosen session S is gone (the forwarder picks again), and
/// the owner (a string) when the request was assigned before (a retry after a lost reply: it is
/// never pushed twice); else it writes claim:<id> = S and pushes the item (the
/// sealed envelope, or for a big one a reference to req:<id>, stored just before with a plain
/// SET) onto S's own inbox, which only S pops, and publishes the request id on S's channel: when
/// that reaches nobody (S was killed, its presence has not expired yet) the item is taken back
/// and -1 returned; else the number of receivers. req:<id> is deleted whenever -1 or 0 is returned.
/// ARGV[8], after the forwarder withdrew the request from another session: the claim that
/// withdrawal wrote ("cloud"), which this assignment may replace (no other claim); it is
/// written back when the assignment is taken back.
inline constexpr std::string_view offer_text = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) == 0 then
  if KEYS[4] then redis.call('DEL', KEYS[4]) end
  return 0
end
if ARGV[1] == 'presence' then return 1 end
if redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('DEL', KEYS[4])
  return -1
end
local ttl = tonumber(ARGV[3])
local owner = redis.call('GET', KEYS[5])
if owner and owner ~= ARGV[8] then return owner end
redis.call('SET', KEYS[5], ARGV[7], 'PX', ttl + 60000)
redis.call('RPUSH', KEYS[3], ARGV[2])
if redis.call('PTTL', KEYS[3]) < ttl then redis.call('PEXPIRE', KEYS[3], ttl) end
local publish = 'PUBLISH'
if ARGV[5] == 'SPUBLISH' then publish = 'SPUBLISH' end
local receivers = redis.call(publish, ARGV[4], ARGV[6])
if receivers == 0 then
  redis.call('LREM', KEYS[3], -1, ARGV[2])
  redis.call('DEL', KEYS[4])
  if ARGV[8] then
    redis.call('SET', KEYS[5], ARGV[8], 'PX', ttl + 60000)
  else
    redis.call('DEL', KEYS[5])
  end
  return -1
end
return receivers
)lua";

/// Withdraw (forwarder, while it waits for the answer). KEYS: inbox:<S>, consumer:<S>,
/// req:<id>, claim:<id>. ARGV: the inbox item, "1" when the heartbeat bound has passed since the
/// assignment, ttl ms of a cloud claim. When S is gone or the bound has passed, takes the item
/// back out of S's inbox if S has not popped it yet: then it returns {1} (withdrawn: nobody can
/// run it any more, the forwarder runs it in the cloud; req:<id> is deleted and claim:<id> says
/// "cloud"). Otherwise returns {2, 1 or 0}: whether S's key still exists.
inline constexpr std::string_view withdraw_text = R"lua(
local alive = redis.call('EXISTS', KEYS[2])
if alive == 0 or ARGV[2] == '1' then
  if redis.call('LREM', KEYS[1], 1, ARGV[1]) > 0 then
    redis.call('DEL', KEYS[3])
    redis.call('SET', KEYS[4], 'cloud', 'PX', ARGV[3])
    return {1}
  end
end
return {2, alive}
)lua";

/// Sessions (forwarder): the presence view (docs/routing.md). KEYS: consumers. ARGV: the
/// prefix of a session's key ("funcie:{A}:consumer:"), the most sessions returned. Drops
/// expired sessions by server TIME and returns {S1, info1, S2, info2, ...} of the live ones
/// whose key exists (every key shares the app's hash tag, so one cluster slot holds them).
inline constexpr std::string_view sessions_text = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local members = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf', 'LIMIT', 0, ARGV[2])
local out = {}
for _, session in ipairs(members) do
  local info = redis.call('GET', ARGV[1] .. session)
  if info then
    out[#out + 1] = session
    out[#out + 1] = info
  end
end
return out
)lua";

/// Heartbeat (consumer). KEYS: consumers, consumer:<S>. ARGV: S, ttl ms, info JSON, "1" on
/// the first beat. Returns 0 (and changes nothing) when a later beat finds the session's
/// key gone: the session is over. The sorted set expires when its last member does.
inline constexpr std::string_view heartbeat_text = R"lua(
if ARGV[4] ~= '1' and redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
local t = redis.call('TIME')
local ttl = tonumber(ARGV[2])
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
redis.call('SET', KEYS[2], ARGV[3], 'PX', ttl)
return 1
)lua";

/// Respond (consumer). KEYS: resp:<id>. ARGV: envelope, ttl ms.
inline constexpr std::string_view respond_text = R"lua(
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
)lua";

/// Leave (consumer). KEYS: consumers, consumer:<S>. ARGV: S.
inline constexpr std::string_view leave_text = R"lua(
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2])
return 1
)lua";

/// The scripts with their SHA1, computed once.
struct scripts {
  script offer{"offer", offer_text, sha1_hex(offer_text)};
  script withdraw{"withdraw", withdraw_text, sha1_hex(withdraw_text)};
  script sessions{"sessions", sessions_text, sha1_hex(sessions_text)};
  script heartbeat{"heartbeat", heartbeat_text, sha1_hex(heartbeat_text)};
  script respond{"respond", respond_text, sha1_hex(respond_text)};
  script leave{"leave", leave_text, sha1_hex(leave_text)};
};
const scripts& all_scripts();

}  // namespace funcie::redis_backend
