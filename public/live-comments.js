// The live list of a post's comments: one live query (GET /structr/rest/Comment?post=<id> as
// an event stream), kept by Herald's helper.
import { LiveQuery } from '/structr/live.js';

export function showLiveComments(list, postId, onChange = () => {}) {
  const comments = new LiveQuery('/structr/rest/Comment?post=' + encodeURIComponent(postId) + '&_sort=createdDate');
  comments.addEventListener('change', (event) => {
    list.replaceChildren(...comments.items.map((comment) => {
      const item = document.createElement('li');
      item.dataset.id = comment.id;
      item.textContent = comment.text + (comment.author ? ' (' + comment.author.name + ')' : '');
      return item;
    }));
    onChange(event.detail, comments.items);
  });
  return comments;
}
