using System.CommandLine;
using System.Reflection;

namespace Consort.Cli.Commands;

/// <summary><c>consort bench NAME</c>: every <see cref="IBenchCommand"/> in this assembly.</summary>
public sealed class BenchCommand : ICliCommand
{
    /// <inheritdoc />
    public Command Build()
    {
        var bench = new Command("bench", "Benchmarks that print ratios measured in one run.");
        foreach (var type in Assembly.GetExecutingAssembly().GetTypes()
                     .Where(t => typeof(IBenchCommand).IsAssignableFrom(t) && t is { IsAbstract: false, IsInterface: false })
                     .OrderBy(t => t.Name))
            bench.Subcommands.Add(((IBenchCommand)Activator.CreateInstance(type)!).Build());
        return bench;
    }
}
