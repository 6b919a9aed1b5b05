// Herald admin console: hash routes, one view per section, plain DOM.
import * as api from '/structr/admin/api.js';

const main = document.getElementById('main');
let schema = null;
let admin = null;
let leaving = () => {};  // what the current view stops when another opens (feeds, timers)

/** An element: h('button', {type: 'button', onclick}, 'Save'). */
function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on')) element.addEventListener(key.slice(2), value);
    else if (key === 'text') element.textContent = value;
    else if (value === true) element.setAttribute(key, '');
    else element.setAttribute(key, value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

function show(...children) {
  leaving();
  leaving = () => {};
  main.replaceChildren(...children);
  main.focus();
}

function say(text) { document.getElementById('status').textContent = text; }

function failure(error) {
  return h('p', { class: 'error', role: 'alert' }, error.message || String(error));
}

function pretty(value) { return JSON.stringify(value, null, 2); }

async function loadSchema() {
  schema = (await api.result('GET', '_schema')).result;
  schema.types.sort((a, b) => a.name.localeCompare(b.name));
  return schema;
}

function typeNamed(name) { return schema.types.find((type) => type.name === name); }

// MARK: Log in

function loginView(message) {
  document.getElementById('nav').hidden = true;
  document.getElementById('whoami').hidden = true;
  const error = h('p', { class: 'error', role: 'alert', id: 'login-error' }, message || '');
  const form = h('form', { id: 'login', class: 'card' },
    h('h2', {}, 'Log in'),
    h('label', { for: 'login-name' }, 'Name'),
    h('input', { id: 'login-name', name: 'name', autocomplete: 'username', required: true }),
    h('label', { for: 'login-password' }, 'Password'),
    h('input', { id: 'login-password', name: 'password', type: 'password', autocomplete: 'current-password', required: true }),
    h('button', { type: 'submit' }, 'Log in'),
    error);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.textContent = '';
    try {
      admin = await api.login(form.elements.name.value, form.elements.password.value);
      await enter();
    } catch (e) {
      error.textContent = e.message;
    }
  });
  show(form);
  form.elements.name.focus();
}

async function enter() {
  await loadSchema();
  document.getElementById('nav').hidden = false;
  document.getElementById('whoami').hidden = false;
  document.getElementById('admin-name').textContent = 'Logged in as ' + admin.name;
  if (!location.hash || location.hash === '#/login') location.hash = '#/schema';
  else route();
}

document.getElementById('logout').addEventListener('click', async () => {
  await api.logout();
  admin = null;
  location.hash = '#/login';
  loginView('Logged out');
});

// MARK: Schema

async function schemaView() {
  await loadSchema();
  const status = schema.status || {};
  const refused = status.refused;
  const types = schema.types.map((type) => h('section', { class: 'card type', id: 'type-' + type.name },
    h('h3', {}, type.name, type.builtIn ? h('span', { class: 'badge' }, 'built-in') : null,
      type.file ? h('small', {}, ' ' + type.file) : null),
    h('table', {},
      h('caption', {}, 'Properties'),
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Name'), h('th', { scope: 'col' }, 'Type'), h('th', { scope: 'col' }, 'Rules'))),
      h('tbody', {}, type.properties.sort((a, b) => a.name.localeCompare(b.name)).map((p) => h('tr', {},
        h('td', {}, p.name),
        h('td', {}, p.type + (p.values ? ' (' + p.values.join(', ') + ')' : '')),
        h('td', {}, [p.required && 'required', p.unique && 'unique', p.indexed && 'indexed', p.writeOnly && 'write-only',
          p.default !== undefined && 'default ' + JSON.stringify(p.default)].filter(Boolean).join(', ')))))),
    type.relationships.length ? h('table', {},
      h('caption', {}, 'Relationships'),
      h('tbody', {}, type.relationships.map((r) => h('tr', {},
        h('td', {}, r.name), h('td', {}, (r.cardinality === 'many' ? 'many ' : 'one ') + r.to.join(' or ')),
        h('td', {}, r.direction))))) : null,
    type.methods.length ? h('table', {},
      h('caption', {}, 'Methods and hooks'),
      h('tbody', {}, type.methods.map((m) => h('tr', {},
        h('td', {}, m.name), h('td', {}, m.lifecycle ? 'hook (' + m.lifecycle + ')' : 'method'),
        h('td', {}, m.file + ' · ' + m.language))))) : null));
  show(
    h('h2', {}, 'Schema'),
    h('section', { class: 'card', id: 'schema-status' },
      h('p', {}, 'Loaded ' + (status.loadedAt || '?') + ' (generation ' + status.generation + ')'),
      refused
        ? h('p', { class: 'error', role: 'alert' }, 'Last edit refused at ' + refused.at + ': ',
          h('strong', {}, [refused.file, refused.field].filter(Boolean).join(': ') || 'schema'), ' — ' + refused.message)
        : h('p', {}, 'No refused edit since then.')),
    schema.globalMethods.length ? h('section', { class: 'card' }, h('h3', {}, 'Global methods'),
      h('ul', {}, schema.globalMethods.map((m) => h('li', {}, m.name + ' — ' + m.file)))) : null,
    (schema.events || []).length ? h('section', { class: 'card', id: 'schema-events' }, h('h3', {}, 'Declared events (events.json)'),
      h('ul', {}, schema.events.map((e) => h('li', {}, h('strong', {}, e.name), e.description ? ' — ' + e.description : '',
        h('pre', {}, JSON.stringify(e.schema, null, 2)))))) : null,
    (schema.channels || []).length ? h('section', { class: 'card', id: 'schema-channels' }, h('h3', {}, 'Channels (channels.json)'),
      h('ul', {}, schema.channels.map((c) => h('li', {}, h('code', {}, c.pattern), ' — subscribe: ' + c.subscribe)))) : null,
    ...types);
}

// MARK: Data

const pageSize = 20;

function typePicker(current, onchange) {
  return h('label', {}, 'Type ',
    h('select', { id: 'type-picker', onchange: (e) => onchange(e.target.value) },
      schema.types.map((t) => h('option', { value: t.name, selected: t.name === current }, t.name))));
}

function cell(value) {
  if (value === null || value === undefined) return '';
  if (Array.isArray(value)) return value.map((v) => (v && v.name) || (v && v.id) || v).join(', ');
  if (typeof value === 'object') return value.name || value.id || JSON.stringify(value);
  return String(value);
}

/** Links to related objects (one or a list, as REST renders them). */
function linksTo(value) {
  const list = value === undefined || value === null ? [] : Array.isArray(value) ? value : [value];
  return h('span', { class: 'links' }, list.filter((o) => o && o.id).map((o) =>
    h('a', { href: '#/data/' + o.type + '/' + o.id }, o.name || o.id)));
}

async function listView(typeName, params) {
  const type = typeNamed(typeName) || schema.types[0];
  const page = Number(params.get('page') || 1);
  const sort = params.get('sort') || 'createdDate';
  const order = params.get('order') || 'desc';
  const filterKey = params.get('key') || '';
  const filterValue = params.get('value') || '';
  const query = new URLSearchParams({ _page: page, _pageSize: pageSize, _sort: sort, _order: order, _outputNestingDepth: 1 });
  if (filterKey && filterValue) query.set(filterKey, filterValue);
  const go = (changes) => {
    const next = new URLSearchParams({ page, sort, order, key: filterKey, value: filterValue, ...changes });
    location.hash = '#/data/' + type.name + '?' + next;
  };
  const columns = ['id', ...type.properties.filter((p) => !p.writeOnly).map((p) => p.name).slice(0, 5),
    ...type.relationships.map((r) => r.name).slice(0, 2)];
  let answer;
  try {
    answer = await api.result('GET', type.name + '?' + query);
  } catch (e) {
    show(h('h2', {}, 'Data'), typePicker(type.name, (name) => (location.hash = '#/data/' + name)), failure(e));
    return;
  }
  const filter = h('form', { class: 'filters', id: 'filter' },
    h('label', { for: 'filter-key' }, 'Filter'),
    h('select', { id: 'filter-key', name: 'key' },
      type.properties.filter((p) => !p.writeOnly).map((p) => h('option', { value: p.name, selected: p.name === filterKey }, p.name))),
    h('label', { for: 'filter-value' }, 'equals'),
    h('input', { id: 'filter-value', name: 'value', value: filterValue }),
    h('button', { type: 'submit' }, 'Apply'),
    h('button', { type: 'button', onclick: () => go({ key: '', value: '', page: 1 }) }, 'Clear'));
  filter.addEventListener('submit', (e) => {
    e.preventDefault();
    go({ key: filter.elements.key.value, value: filter.elements.value.value, page: 1 });
  });
  const header = columns.map((name) => h('th', { scope: 'col' },
    h('button', { type: 'button', class: 'link', 'aria-label': 'Sort by ' + name,
      onclick: () => go({ sort: name, order: sort === name && order === 'asc' ? 'desc' : 'asc' }) },
    name + (sort === name ? (order === 'asc' ? ' ▲' : ' ▼') : ''))));
  const related = new Set(type.relationships.map((r) => r.name));
  const rows = answer.result.map((object) => h('tr', {}, columns.map((name, index) => h('td', {},
    index === 0 ? h('a', { href: '#/data/' + type.name + '/' + object.id }, object.id)
      : related.has(name) ? linksTo(object[name]) : cell(object[name])))));
  const pages = Math.max(1, answer.page_count || 1);
  show(
    h('h2', {}, 'Data'),
    h('div', { class: 'toolbar' }, typePicker(type.name, (name) => (location.hash = '#/data/' + name)),
      h('a', { class: 'button', href: '#/data/' + type.name + '/new', id: 'new-object' }, 'New ' + type.name)),
    filter,
    h('table', { id: 'objects' }, h('caption', {}, answer.result_count + ' ' + type.name + ' objects'),
      h('thead', {}, h('tr', {}, header)), h('tbody', {}, rows)),
    h('nav', { class: 'pager', 'aria-label': 'Pages' },
      h('button', { type: 'button', disabled: page <= 1, onclick: () => go({ page: page - 1 }) }, 'Previous'),
      h('span', {}, ' Page ' + page + ' of ' + pages + ' '),
      h('button', { type: 'button', disabled: page >= pages, onclick: () => go({ page: page + 1 }) }, 'Next')));
}

function inputFor(property, value) {
  const id = 'field-' + property.name;
  const common = { id, name: property.name, 'aria-describedby': id + '-error' };
  switch (property.type) {
    case 'boolean':
      return h('input', { ...common, type: 'checkbox', checked: value === true });
    case 'integer': case 'long': case 'double':
      return h('input', { ...common, type: 'number', step: property.type === 'double' ? 'any' : '1', value: value ?? '' });
    case 'enum':
      return h('select', common, h('option', { value: '' }, '—'),
        (property.values || []).map((v) => h('option', { value: v, selected: v === value }, v)));
    case 'password':
      return h('input', { ...common, type: 'password', autocomplete: 'new-password', placeholder: 'unchanged' });
    case 'string': case 'date':
      return h('input', { ...common, value: value ?? '' });
    default:
      return h('textarea', { ...common, rows: 3 }, value === undefined || value === null ? '' : pretty(value));
  }
}

function readInput(property, element) {
  if (property.type === 'boolean') return element.checked;
  const text = element.value;
  if (text === '') return property.type === 'password' ? undefined : null;
  switch (property.type) {
    case 'integer': case 'long': return Number.parseInt(text, 10);
    case 'double': return Number(text);
    case 'string': case 'date': case 'enum': case 'password': return text;
    default:
      try { return JSON.parse(text); } catch { return text; }
  }
}

async function objectView(typeName, id) {
  const type = typeNamed(typeName);
  if (!type) { show(failure(new Error('No type ' + typeName))); return; }
  const isNew = id === 'new';
  let object = {};
  if (isNew) {
    for (const p of type.properties) if (p.default !== undefined) object[p.name] = p.default;
  } else {
    try { object = (await api.result('GET', type.name + '/' + id + '?_outputNestingDepth=1')).result; } catch (e) {
      show(h('h2', {}, type.name), failure(e));
      return;
    }
  }
  const properties = type.properties.filter((p) => !['id', 'type', 'createdDate', 'lastModifiedDate'].includes(p.name));
  const fields = properties.map((p) => h('div', { class: 'field', 'data-field': p.name },
    h('label', { for: 'field-' + p.name }, p.name + (p.required ? ' *' : '')),
    inputFor(p, object[p.name]),
    h('span', { class: 'field-error', id: 'field-' + p.name + '-error', role: 'alert' })));
  const links = type.relationships.map((r) => {
    const value = object[r.name];
    const list = value === undefined || value === null ? [] : Array.isArray(value) ? value : [value];
    const target = r.to.length === 1 ? r.to[0] : null;
    return h('div', { class: 'field', 'data-field': r.name },
      h('label', { for: 'field-' + r.name }, r.name + ' (' + (r.cardinality === 'many' ? 'ids, comma separated' : 'id') + ')'),
      h('input', { id: 'field-' + r.name, name: r.name, value: list.map((o) => o.id || o).join(', '),
        'aria-describedby': 'field-' + r.name + '-error' }),
      linksTo(list.map((o) => (typeof o === 'string' ? { id: o, type: target } : o))),
      h('span', { class: 'field-error', id: 'field-' + r.name + '-error', role: 'alert' }));
  });
  const formError = h('p', { class: 'error', role: 'alert', id: 'form-error' });
  const form = h('form', { id: 'object-form', class: 'card' }, fields, links,
    h('div', { class: 'toolbar' },
      h('button', { type: 'submit', id: 'save' }, isNew ? 'Create' : 'Save'),
      isNew ? null : h('button', { type: 'button', class: 'danger', id: 'delete', onclick: remove }, 'Delete'),
      isNew ? null : h('a', { href: '#/grants?object=' + id }, 'Who can see it?')),
    formError);
  async function remove() {
    if (!confirm('Delete ' + type.name + ' ' + id + '?')) return;
    try {
      await api.result('DELETE', type.name + '/' + id);
      say('Deleted ' + id);
      location.hash = '#/data/' + type.name;
    } catch (e) { formError.textContent = e.message; }
  }
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    for (const span of form.querySelectorAll('.field-error')) span.textContent = '';
    formError.textContent = '';
    const body = {};
    for (const p of properties) {
      const value = readInput(p, form.elements[p.name]);
      const before = object[p.name] === undefined ? null : object[p.name];
      if (value === undefined) continue;
      if (isNew ? value !== null && value !== false : JSON.stringify(value) !== JSON.stringify(before)) body[p.name] = value;
    }
    for (const r of type.relationships) {
      const ids = form.elements[r.name].value.split(',').map((s) => s.trim()).filter(Boolean);
      const value = r.cardinality === 'many' ? ids : (ids[0] || null);
      const current = object[r.name];
      const before = current === undefined || current === null ? (r.cardinality === 'many' ? [] : null)
        : Array.isArray(current) ? current.map((o) => o.id || o) : (current.id || current);
      if (JSON.stringify(value) !== JSON.stringify(before)) body[r.name] = value;
    }
    try {
      if (isNew) {
        const created = await api.result('POST', type.name, body);
        say('Created ' + created.result[0]);
        location.hash = '#/data/' + type.name + '/' + created.result[0];
      } else {
        await api.result('PUT', type.name + '/' + id, body);
        say('Saved ' + id);
        objectView(type.name, id);
      }
    } catch (e) {
      formError.textContent = e.message;
      for (const fieldError of e.errors || []) {
        const span = form.querySelector('[data-field="' + CSS.escape(fieldError.property) + '"] .field-error');
        const text = fieldError.token + (fieldError.detail ? ': ' + fieldError.detail : '');
        if (span) span.textContent = text;
        else formError.textContent += ' — ' + fieldError.property + ': ' + text;
      }
      const first = form.querySelector('.field-error:not(:empty)');
      if (first) first.parentElement.querySelector('input, select, textarea').focus();
    }
  });
  show(h('h2', {}, h('a', { href: '#/data/' + type.name }, type.name), ' ', isNew ? 'new' : id), form);
}

// MARK: Users and groups

async function usersView() {
  const [users, groups] = await Promise.all([
    api.result('GET', 'User?_sort=name&_outputNestingDepth=1'), api.result('GET', 'Group?_sort=name&_outputNestingDepth=1')]);
  const principals = [...users.result, ...groups.result];
  const passwordError = h('p', { class: 'error', role: 'alert' });
  const passwordForm = h('form', { id: 'set-password', class: 'card' }, h('h3', {}, 'Set a password'),
    h('label', { for: 'password-user' }, 'User'),
    h('select', { id: 'password-user', name: 'user' }, users.result.map((u) => h('option', { value: u.id }, u.name))),
    h('label', { for: 'password-new' }, 'New password'),
    h('input', { id: 'password-new', name: 'password', type: 'password', autocomplete: 'new-password', required: true }),
    h('button', { type: 'submit' }, 'Set password'), passwordError);
  passwordForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    passwordError.textContent = '';
    try {
      await api.result('PUT', 'User/' + passwordForm.elements.user.value, { password: passwordForm.elements.password.value });
      passwordForm.elements.password.value = '';
      say('Password set');
    } catch (error) { passwordError.textContent = error.message; }
  });
  const memberError = h('p', { class: 'error', role: 'alert' });
  const memberForm = h('form', { id: 'add-member', class: 'card' }, h('h3', {}, 'Add to a group'),
    h('label', { for: 'member-principal' }, 'User or group'),
    h('select', { id: 'member-principal', name: 'member' },
      principals.map((p) => h('option', { value: p.id }, p.type + ' ' + p.name))),
    h('label', { for: 'member-group' }, 'Group'),
    h('select', { id: 'member-group', name: 'group' }, groups.result.map((g) => h('option', { value: g.id }, g.name))),
    h('button', { type: 'submit' }, 'Add'), memberError);
  memberForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    memberError.textContent = '';
    const group = groups.result.find((g) => g.id === memberForm.elements.group.value);
    const members = (group.members || []).map((m) => m.id);
    try {
      await api.result('PUT', 'Group/' + group.id, { members: [...new Set([...members, memberForm.elements.member.value])] });
      usersView();
    } catch (error) { memberError.textContent = error.message; }
  });
  const removeMember = async (group, member) => {
    await api.result('PUT', 'Group/' + group.id, { members: group.members.map((m) => m.id).filter((id) => id !== member) });
    usersView();
  };
  show(
    h('h2', {}, 'Users & groups'),
    h('table', { id: 'users' }, h('caption', {}, 'Users'),
      h('thead', {}, h('tr', {}, ['Name', 'E-mail', 'Admin', 'Groups'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, users.result.map((u) => h('tr', {},
        h('td', {}, h('a', { href: '#/data/User/' + u.id }, u.name)), h('td', {}, u.eMail || ''),
        h('td', {}, u.isAdmin ? 'yes' : ''), h('td', {}, cell(u.groups)))))),
    h('table', { id: 'groups' }, h('caption', {}, 'Groups (members may be groups: they nest)'),
      h('thead', {}, h('tr', {}, ['Name', 'Members', 'In groups'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, groups.result.map((g) => h('tr', {},
        h('td', {}, h('a', { href: '#/data/Group/' + g.id }, g.name)),
        h('td', {}, (g.members || []).map((m) => h('span', { class: 'chip' }, (m.type === 'Group' ? 'group ' : '') + m.name,
          h('button', { type: 'button', class: 'link', 'aria-label': 'Remove ' + m.name + ' from ' + g.name,
            onclick: () => removeMember(g, m.id) }, '×')))),
        h('td', {}, cell(g.groups)))))),
    h('div', { class: 'columns' }, passwordForm, memberForm));
}

// MARK: Grants

const flagBits = [
  ['GET', 1, 16], ['PUT', 2, 32], ['POST', 4, 64], ['DELETE', 8, 128],
  ['PATCH', 4096, 8192], ['HEAD', 1024, 2048], ['OPTIONS', 256, 512],
];

async function grantsView(params) {
  const grants = await api.result('GET', 'ResourceAccess?_sort=signature');
  const rows = grants.result.map((grant) => h('tr', { 'data-signature': grant.signature },
    h('th', { scope: 'row' }, grant.signature),
    ['authenticated', 'public'].map((who, column) => flagBits.map(([method, auth, open]) => {
      const bit = column === 0 ? auth : open;
      return h('td', {}, h('input', {
        type: 'checkbox', checked: (grant.flags & bit) !== 0,
        'aria-label': method + ' for ' + who + ' users on ' + grant.signature,
        'data-bit': bit,
        onchange: async (e) => {
          const flags = e.target.checked ? grant.flags | bit : grant.flags & ~bit;
          try {
            await api.result('PUT', 'ResourceAccess/' + grant.id, { flags });
            grant.flags = flags;
            say(grant.signature + ': flags ' + flags);
          } catch (error) { e.target.checked = !e.target.checked; say(error.message); }
        },
      }));
    })),
    h('td', {}, h('code', {}, String(grant.flags)))));
  const addError = h('p', { class: 'error', role: 'alert' });
  const add = h('form', { id: 'add-grant', class: 'toolbar' },
    h('label', { for: 'grant-signature' }, 'New signature'),
    h('input', { id: 'grant-signature', name: 'signature', placeholder: 'Post or Post/_id', required: true }),
    h('button', { type: 'submit' }, 'Add grant'), addError);
  add.addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      await api.result('POST', 'ResourceAccess', { signature: add.elements.signature.value, flags: 0 });
      grantsView(params);
    } catch (error) { addError.textContent = error.message; }
  });
  const lookup = h('form', { id: 'object-access', class: 'toolbar' },
    h('label', { for: 'access-id' }, 'Object id'),
    h('input', { id: 'access-id', name: 'id', value: params.get('object') || '', required: true, size: 34 }),
    h('button', { type: 'submit' }, 'Who can see it?'));
  const explanation = h('div', { id: 'access-result' });
  lookup.addEventListener('submit', (e) => {
    e.preventDefault();
    location.hash = '#/grants?object=' + encodeURIComponent(lookup.elements.id.value.trim());
  });
  show(
    h('h2', {}, 'Grants'),
    h('section', { class: 'card' }, h('h3', {}, 'Resource access'),
      h('p', {}, 'Which REST calls need no admin: one row per signature, one box per method for logged-in and anonymous callers.'),
      h('div', { class: 'scroll' }, h('table', { id: 'resource-access' },
        h('thead', {},
          h('tr', {}, h('td', {}), h('th', { scope: 'colgroup', colspan: flagBits.length }, 'Authenticated users'),
            h('th', { scope: 'colgroup', colspan: flagBits.length }, 'Public (anonymous)'), h('td', {})),
          h('tr', {}, h('th', { scope: 'col' }, 'Signature'),
            [...flagBits, ...flagBits].map(([method]) => h('th', { scope: 'col' }, method)), h('th', { scope: 'col' }, 'flags'))),
        h('tbody', {}, rows))),
      add),
    h('section', { class: 'card' }, h('h3', {}, 'Object grants and visibility'), lookup, explanation));
  if (params.get('object')) explainObject(params.get('object'), explanation);
}

async function explainObject(id, target) {
  let access;
  try { access = (await api.result('GET', '_access/' + id)).result; } catch (e) { target.replaceChildren(failure(e)); return; }
  const grantError = h('p', { class: 'error', role: 'alert' });
  const principals = [...(await api.result('GET', 'User?_sort=name')).result, ...(await api.result('GET', 'Group?_sort=name')).result];
  const form = h('form', { id: 'set-object-grant', class: 'toolbar' },
    h('label', { for: 'grant-principal' }, 'Principal'),
    h('select', { id: 'grant-principal', name: 'principal' }, principals.map((p) => h('option', { value: p.id }, p.type + ' ' + p.name))),
    ['read', 'write', 'delete', 'accessControl'].map((right) => h('label', {},
      h('input', { type: 'checkbox', name: right }), ' ' + right)),
    h('button', { type: 'submit' }, 'Set rights'), grantError);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const rights = ['read', 'write', 'delete', 'accessControl'].filter((r) => form.elements[r].checked);
    try {
      await api.result('PUT', '_access/' + id, { principal: form.elements.principal.value, rights });
      explainObject(id, target);
    } catch (error) { grantError.textContent = error.message; }
  });
  target.replaceChildren(
    h('p', {}, h('a', { href: '#/data/' + access.type + '/' + access.id }, access.type + ' ' + (access.name || access.id)),
      ' · owner ', access.owner ? h('a', { href: '#/data/User/' + access.owner }, access.owner) : 'none',
      access.visibleToPublicUsers ? ' · visible to anonymous clients' : '',
      access.visibleToAuthenticatedUsers ? ' · visible to every logged-in user' : ''),
    h('table', { id: 'object-grants' }, h('caption', {}, 'Grants on it'),
      h('tbody', {}, access.grants.length ? access.grants.map((g) => h('tr', {},
        h('td', {}, (g.principal.type || '?') + ' ' + (g.principal.name || g.principal.id)), h('td', {}, g.rights.join(', '))))
        : h('tr', {}, h('td', {}, 'none')))),
    form,
    h('table', { id: 'readers' }, h('caption', {}, 'Users who can read it, and why (the superuser always can)'),
      h('tbody', {}, access.readers.map((r) => h('tr', {}, h('td', {}, r.name || r.id), h('td', {}, r.reasons.join('; ')))))));
}

// MARK: Live events

function chart(label) {
  const canvas = h('canvas', { width: 240, height: 60, role: 'img', 'aria-label': label });
  const value = h('span', { class: 'value' }, '–');
  const points = [];
  return {
    element: h('figure', { class: 'chart' }, h('figcaption', {}, label, ' ', value), canvas),
    push(v) {
      points.push(v);
      if (points.length > 60) points.shift();
      value.textContent = Number.isInteger(v) ? String(v) : v.toFixed(1);
      const context = canvas.getContext('2d');
      context.clearRect(0, 0, canvas.width, canvas.height);
      const top = Math.max(1, ...points);
      context.strokeStyle = '#2563eb';
      context.lineWidth = 2;
      context.beginPath();
      points.forEach((p, i) => {
        const x = (i / 59) * canvas.width;
        const y = canvas.height - 2 - (p / top) * (canvas.height - 4);
        if (i === 0) context.moveTo(x, y); else context.lineTo(x, y);
      });
      context.stroke();
    },
  };
}

function audienceText(audience) {
  if (audience.users) return 'users ' + audience.users.join(', ');
  if (audience.channel) return 'channel ' + audience.channel;
  if ('authenticated' in audience) {
    const parts = [audience.authenticated && 'authenticated', audience.anonymous && 'anonymous'].filter(Boolean);
    return 'broadcast to ' + (parts.join(' and ') || 'nobody');
  }
  return JSON.stringify(audience);
}

function eventsView() {
  const filter = h('input', { id: 'event-filter', placeholder: 'e.g. notification' });
  const body = h('tbody', {});
  const state = h('p', { id: 'feed-state' }, 'Connecting…');
  const charts = [chart('Open streams'), chart('Events/s'), chart('Deliveries/s')];
  const controller = new AbortController();
  let timer = null;
  const shown = (row) => !filter.value || row.dataset.type.includes(filter.value);
  filter.addEventListener('input', () => { for (const row of body.children) row.hidden = !shown(row); });
  show(
    h('h2', {}, 'Live events'),
    h('div', { class: 'charts' }, charts.map((c) => c.element)),
    h('div', { class: 'toolbar' }, h('label', { for: 'event-filter' }, 'Type contains'), filter,
      h('button', { type: 'button', onclick: () => body.replaceChildren() }, 'Clear')),
    state,
    h('table', { id: 'monitor' }, h('thead', {}, h('tr', {}, ['Id', 'Type', 'Audience', 'Data'].map((t) => h('th', { scope: 'col' }, t)))), body));
  api.readEvents('/structr/admin/events', (event) => {
    if (event.type !== 'published') return;
    const entry = JSON.parse(event.data);
    let data = entry.data;
    try { data = pretty(JSON.parse(entry.data)); } catch { /* not JSON: shown as sent */ }
    const row = h('tr', { 'data-type': entry.type }, h('td', {}, String(entry.id)), h('td', {}, entry.type),
      h('td', {}, audienceText(entry.audience)), h('td', {}, h('pre', {}, data)));
    row.hidden = !shown(row);
    body.prepend(row);
    while (body.children.length > 500) body.lastChild.remove();
  }, controller.signal).then(() => { state.textContent = 'The feed ended (the server shut down?)'; })
    .catch((e) => { if (!controller.signal.aborted) state.textContent = e.message; });
  state.textContent = 'Following every event as it is published.';
  let previous = null;
  const sample = async () => {
    const values = await api.metrics().catch(() => null);
    if (!values) { charts[0].element.title = 'The metrics endpoint is off or refused'; return; }
    const now = performance.now();
    charts[0].push(values.herald_open_streams || 0);
    if (previous) {
      const seconds = (now - previous.at) / 1000;
      charts[1].push(Math.max(0, ((values.herald_events_published_total || 0) - previous.published) / seconds));
      charts[2].push(Math.max(0, ((values.herald_event_deliveries_total || 0) - previous.deliveries) / seconds));
    }
    previous = { at: now, published: values.herald_events_published_total || 0, deliveries: values.herald_event_deliveries_total || 0 };
  };
  sample();
  timer = setInterval(sample, 2000);
  leaving = () => { controller.abort(); clearInterval(timer); };
}

// MARK: Scripts

async function scriptsView() {
  const users = (await api.result('GET', 'User?_sort=name')).result;
  const output = h('div', { id: 'script-output', 'aria-live': 'polite' });
  const form = h('form', { id: 'script', class: 'card' },
    h('label', { for: 'script-source' }, 'JavaScript (the body of a method; return a value to see it)'),
    h('textarea', { id: 'script-source', name: 'source', rows: 10, spellcheck: 'false' },
      "$.log('hello from the console');\nreturn $.find('User').map(u => u.name);"),
    h('div', { class: 'toolbar' },
      h('label', { for: 'script-user' }, 'Run as'),
      h('select', { id: 'script-user', name: 'runAs' }, h('option', { value: '' }, 'me (' + admin.name + ')'),
        users.map((u) => h('option', { value: u.id }, u.name))),
      h('label', {}, h('input', { type: 'checkbox', name: 'commit', id: 'script-commit' }), ' Commit (otherwise everything is rolled back)'),
      h('button', { type: 'submit', id: 'run-script' }, 'Run')),
    output);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    output.replaceChildren(h('p', {}, 'Running…'));
    try {
      const run = (await api.result('POST', '_script', {
        source: form.elements.source.value, runAs: form.elements.runAs.value || null, commit: form.elements.commit.checked,
      })).result;
      output.replaceChildren(
        h('p', { class: run.error ? 'error' : 'ok', id: 'script-outcome' },
          run.error ? 'Failed (' + run.error.code + '): ' + run.error.message : (run.committed ? 'Committed' : 'Rolled back'),
          ' · ran as ' + run.runAs),
        run.error && run.error.errors.length ? h('pre', {}, pretty(run.error.errors)) : null,
        h('h3', {}, 'Result'), h('pre', { id: 'script-result' }, pretty(run.result)),
        h('h3', {}, 'Log'), h('pre', { id: 'script-log' }, run.log.join('\n') || '(nothing logged)'),
        h('h3', {}, run.committed ? 'Events raised' : 'Events it would raise'),
        h('pre', { id: 'script-events' }, run.events.length
          ? run.events.map((ev) => ev.type + ' → ' + audienceText(ev.audience) + '\n  ' + ev.data).join('\n') : '(none)'));
    } catch (error) { output.replaceChildren(failure(error)); }
  });
  show(h('h2', {}, 'Scripts'), form);
}

// MARK: Routing

async function route() {
  if (!admin) { loginView(); return; }
  const [path, query = ''] = location.hash.slice(1).split('?');
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  const params = new URLSearchParams(query);
  for (const link of document.querySelectorAll('#nav a')) {
    if (link.getAttribute('href') === '#/' + (parts[0] || '')) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  try {
    switch (parts[0]) {
      case 'data':
        if (parts[2]) await objectView(parts[1], parts[2]);
        else await listView(parts[1] || (schema.types.find((t) => !t.builtIn) || schema.types[0]).name, params);
        break;
      case 'users': await usersView(); break;
      case 'grants': await grantsView(params); break;
      case 'events': eventsView(); break;
      case 'scripts': await scriptsView(); break;
      default: await schemaView();
    }
  } catch (error) {
    if (error.status === 401) { admin = null; loginView('Your session ended; log in again'); return; }
    show(failure(error));
  }
}

window.addEventListener('hashchange', route);
(async () => {
  admin = await api.currentAdmin().catch(() => null);
  if (admin) await enter(); else loginView();
})();
