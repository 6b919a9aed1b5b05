// Herald admin console: every call goes through the public REST API.
// Admins log in with a session cookie. The superuser has no session (Herald never gives it
// one), so its name and password stay in this module's memory and go with each request as
// X-User / X-Password; reloading the page forgets them.

let headerCredentials = null;

function headers(extra = {}) {
  const result = { Accept: 'application/json', ...extra };
  if (headerCredentials) {
    result['X-User'] = headerCredentials.name;
    result['X-Password'] = headerCredentials.password;
  }
  return result;
}

/** A REST call: resolves to {status, body}; body is the parsed JSON answer (or null). */
export async function call(method, path, body) {
  const init = { method, credentials: 'same-origin', headers: headers() };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path.startsWith('/') ? path : '/structr/rest/' + path, init);
  const text = await response.text();
  let parsed = null;
  try { parsed = text ? JSON.parse(text) : null; } catch { parsed = { message: text }; }
  return { status: response.status, body: parsed };
}

/** The REST answer's result, or an Error carrying the status and Structr's error body. */
export async function result(method, path, body) {
  const answer = await call(method, path, body);
  if (answer.status >= 400) {
    const error = new Error((answer.body && answer.body.message) || 'HTTP ' + answer.status);
    error.status = answer.status;
    error.errors = (answer.body && answer.body.errors) || [];
    throw error;
  }
  return answer.body;
}

/** The logged-in caller if it is an admin, else null. */
export async function currentAdmin() {
  const me = await call('GET', 'me');
  if (me.status !== 200 || !me.body || !me.body.result) return null;
  return me.body.result.isAdmin ? me.body.result : null;
}

/** Logs in; refuses (and logs out again) anyone who is not an admin. */
export async function login(name, password) {
  if (name === 'superuser') {
    headerCredentials = { name, password };
    const admin = await currentAdmin();
    if (!admin) {
      headerCredentials = null;
      throw new Error('Wrong name or password');
    }
    return admin;
  }
  headerCredentials = null;
  const answer = await call('POST', 'login', { name, password });
  if (answer.status !== 200) throw new Error((answer.body && answer.body.message) || 'Wrong name or password');
  const admin = await currentAdmin();
  if (!admin) {
    await call('POST', 'logout');
    throw new Error('The console is for admins only: ' + name + ' is not an admin');
  }
  return admin;
}

export async function logout() {
  if (!headerCredentials) await call('POST', 'logout');
  headerCredentials = null;
}

/**
 * Reads a text/event-stream with fetch (so the superuser's headers go with it) and calls
 * onEvent({type, id, data}) for each event; resolves when the stream ends. Abort with `signal`.
 */
export async function readEvents(path, onEvent, signal) {
  const response = await fetch(path, {
    credentials: 'same-origin', signal, headers: headers({ Accept: 'text/event-stream' }),
  });
  if (!response.ok || !response.body) throw new Error('The event feed answered ' + response.status);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  let event = { type: 'message', id: '', data: [] };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.search(/\r\n|\r|\n/)) >= 0) {
      const line = buffer.slice(0, end);
      buffer = buffer.slice(end + (buffer.startsWith('\r\n', end) ? 2 : 1));
      if (line === '') {
        if (event.data.length) onEvent({ type: event.type, id: event.id, data: event.data.join('\n') });
        event = { type: 'message', id: '', data: [] };
      } else if (!line.startsWith(':')) {
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        const text = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'event') event.type = text;
        else if (field === 'id') event.id = text;
        else if (field === 'data') event.data.push(text);
      }
    }
  }
}

/** The Prometheus text of /structr/metrics as {name: value} (labels left out), or null. */
export async function metrics() {
  const response = await fetch('/structr/metrics', { credentials: 'same-origin', headers: headers() });
  if (!response.ok) return null;
  const values = {};
  for (const line of (await response.text()).split('\n')) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (match) values[match[1]] = (values[match[1]] || 0) + Number(match[3]);
  }
  return values;
}
