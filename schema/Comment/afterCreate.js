{
    let notification = JSON.stringify({
        type: 'new-comment',
        postId: $.this.post.id,
        authorName: $.this.author.name,
        preview: $.this.text.substring(0, 100)
    });

    // Notify the post author specifically
    $.sendEvent('notification', notification, $.this.post.author);

    // And everyone watching the post's channel
    $.publish('post:' + $.this.post.id, 'comment', {
        id: $.this.id,
        postId: $.this.post.id,
        authorName: $.this.author.name,
        text: $.this.text
    });
}
