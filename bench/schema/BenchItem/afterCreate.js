{
    $.broadcastEvent('created', $.this.payload, true, true);
}
