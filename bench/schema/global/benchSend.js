{
    $.sendEvent('bench', JSON.stringify($.arguments), $.me);
}
