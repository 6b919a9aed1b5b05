import HTTPTypes
import Hummingbird

/// `GET /structr/live.js`: a small ES module that keeps a live query's result in the browser.
///
///     import { LiveQuery } from '/structr/live.js';
///     const comments = new LiveQuery('/structr/rest/Comment?post=' + postId);
///     comments.addEventListener('change', () => render(comments.items));
enum LiveClientScript {
    static let path = "/structr/live.js"

    static func register(on router: Router<HeraldRequestContext>) {
        router.get(RouterPath(path)) { _, _ in
            var headers = HTTPFields()
            headers[.contentType] = "text/javascript; charset=utf-8"
            headers[.cacheControl] = "no-cache"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: .init(string: source)))
        }
    }

    static let source = """
        // Herald live queries: a REST list, kept current from its event stream.
        // new LiveQuery(url) opens `url` (a /structr/rest/<Type>?<filters> list) as an
        // EventSource; `items` is the result in order, `get(id)` one object. Every change
        // dispatches a `change` event whose detail is {kind, id, object, changed}: kind is
        // 'snapshot', 'enter', 'update' or 'leave'. The browser reconnects on its own and the
        // server sends what was missed (or a new snapshot).
        export class LiveQuery extends EventTarget {
          #source;
          #items = new Map();

          constructor(url, { withCredentials = true } = {}) {
            super();
            this.#source = new EventSource(url, { withCredentials });
            this.#source.addEventListener('snapshot', (event) => {
              const { result } = JSON.parse(event.data);
              this.#items = new Map(result.map((object) => [object.id, object]));
              this.#changed('snapshot', null, null, []);
            });
            this.#source.addEventListener('enter', (event) => {
              const object = JSON.parse(event.data);
              this.#items.set(object.id, object);
              this.#changed('enter', object.id, object, []);
            });
            this.#source.addEventListener('update', (event) => {
              const { object, changed } = JSON.parse(event.data);
              this.#items.set(object.id, object);
              this.#changed('update', object.id, object, changed);
            });
            this.#source.addEventListener('leave', (event) => {
              const { id } = JSON.parse(event.data);
              this.#items.delete(id);
              this.#changed('leave', id, null, []);
            });
            this.#source.addEventListener('error', () => this.dispatchEvent(new Event('error')));
          }

          /** The objects in the result, in the order they came. */
          get items() { return [...this.#items.values()]; }

          /** One object of the result, or undefined. */
          get(id) { return this.#items.get(id); }

          /** Whether the stream is open (the browser reconnects a dropped one). */
          get connected() { return this.#source.readyState === EventSource.OPEN; }

          /** Stops following the query. */
          close() { this.#source.close(); }

          #changed(kind, id, object, changed) {
            this.dispatchEvent(new CustomEvent('change', { detail: { kind, id, object, changed } }));
          }
        }

        """
}
