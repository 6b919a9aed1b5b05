{
    let notification = JSON.stringify({
        type: 'new-comment',
        postId: $.this.post.id,
        authorName: $.this.author.name,
        preview: $.this.text.substring(0, 100)
    });

    // Notify the post author specifically
    $.sendEvent('notification', notification, $.this.post.author);
}
