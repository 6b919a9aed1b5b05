{
    $.broadcastEvent('bench', JSON.stringify($.arguments), true, true);
}
