{
    // Comments are public to everyone signed in, so the post's page can list them live.
    $.this.visibleToAuthenticatedUsers = true;
}
