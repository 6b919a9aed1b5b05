{
    // Decides who may subscribe to team:<group name>: the group's members, nested groups included.
    const me = $.me;
    if (!me) return false;
    const name = $.arguments.channel.substring('team:'.length);
    return $.doPrivileged(() => {
        const seen = new Set();
        const contains = (group) => {
            if (seen.has(group.id)) return false;
            seen.add(group.id);
            return group.members.some((m) => m.id === me.id || (m.type === 'Group' && contains(m)));
        };
        return $.find('Group', 'name', name).some(contains);
    });
}
