using Consort.Methods.Text;
using Consort.Testing;
using static Consort.Tests.Methods.Text.TeamProtocolTests;

namespace Consort.Tests.Methods.Text;

/// <summary>structured_interaction and heterogeneous_swarms: who sees whom.</summary>
public class TopologyTests
{
    private static readonly string Revise = Prompts(("answer", "{question}"), ("revise", "R:{previous}<-{others_inline}"));

    private static ConsortModel M(string name) => ScriptedChatClient.Model(name, c => $"{name}{c.Number}");

    [Fact]
    public async Task A_chain_passes_answers_to_the_neighbours_only()
    {
        var m = new[] { M("a"), M("b"), M("c") };
        var s = await MethodHarness.CreateAsync(new StructuredInteractionMethod(), m, $$"""{"structure_type": "chain", "num_rounds": 2, "final": "vote", "prompts": {{Revise}}}""");
        await s.Chat.GetResponseAsync(Q("q"));
        Assert.Equal("R:a1<-b1", ScriptedChatClient.Of(m[0]).Calls[1].Prompt);
        Assert.Equal("R:b1<-a1 | c1", ScriptedChatClient.Of(m[1]).Calls[1].Prompt);
        Assert.Equal("R:c1<-b1", ScriptedChatClient.Of(m[2]).Calls[1].Prompt);
    }

    [Fact]
    public async Task With_a_custom_matrix_a_member_without_in_edges_keeps_its_answer()
    {
        var m = new[] { M("a"), M("b"), M("c") };
        // a -> b, b -> c: a has no in-edges; c sees b's previous answer.
        var s = await MethodHarness.CreateAsync(new StructuredInteractionMethod(), m,
            $$"""{"structure_type": "other", "structure_matrix": [[0,1,0],[0,0,1],[0,0,0]], "num_rounds": 3, "final": "vote", "prompts": {{Revise}}}""");
        var r = await s.Chat.GetResponseAsync(Q("q"));
        Assert.Single(ScriptedChatClient.Of(m[0]).Calls);
        Assert.Equal(new[] { "q", "R:b1<-a1", "R:b2<-a1" }, ScriptedChatClient.Of(m[1]).Calls.Select(c => c.Prompt));
        Assert.Equal(new[] { "q", "R:c1<-b1", "R:c2<-b2" }, ScriptedChatClient.Of(m[2]).Calls.Select(c => c.Prompt));
        Assert.All(r.GetTrace().Where(t => t.Role!.Contains("revise")), t => Assert.NotNull(t.Data!["sees"]));
    }

    [Fact]
    public void Built_in_topologies_match_MoCo()
    {
        // MoCo's generate_adj for 5 models.
        Assert.Equal(new[] { new[] { 0, 1, 1, 1, 1 }, new[] { 1, 0, 1, 0, 1 }, new[] { 1, 1, 0, 1, 0 }, new[] { 1, 0, 1, 0, 1 }, new[] { 1, 1, 0, 1, 0 } }, StructuredInteractionMethod.Adjacency(Topology.Star, 5, null));
        Assert.Equal(new[] { new[] { 0, 1, 1, 0, 0 }, new[] { 1, 0, 0, 1, 1 }, new[] { 1, 0, 0, 0, 0 }, new[] { 0, 1, 0, 0, 0 }, new[] { 0, 1, 0, 0, 0 } }, StructuredInteractionMethod.Adjacency(Topology.Tree, 5, null));
        Assert.Equal(new[] { new[] { 0, 1, 0, 0, 1 }, new[] { 1, 0, 1, 0, 0 }, new[] { 0, 1, 0, 1, 0 }, new[] { 0, 0, 1, 0, 1 }, new[] { 1, 0, 0, 1, 0 } }, StructuredInteractionMethod.Adjacency(Topology.Circle, 5, null));
        Assert.Equal(new[] { new[] { 0, 1, 1 }, new[] { 1, 0, 1 }, new[] { 1, 1, 0 } }, StructuredInteractionMethod.Adjacency(Topology.Complete, 3, null));
    }

    [Theory]
    [InlineData("""{"structure_type": "other", "structure_matrix": [[0,1],[1,0]]}""", "must be 3 x 3")]
    [InlineData("""{"structure_type": "other", "structure_matrix": [[0,1,0],[1,0,2],[0,1,0]]}""", "[1][2] = 2: entries must be 0 or 1")]
    [InlineData("""{"structure_type": "other"}""", "'structure_matrix' is required")]
    [InlineData("""{}""", "'structure_type' is required")]
    [InlineData("""{"structure_type": "mesh"}""", "valid: chain, tree, star, circle, complete, other")]
    [InlineData("""{"structure_type": "star", "final": "best_dev"}""", "needs a task with a dev split")]
    public void Bad_topologies_are_errors_before_work(string hyperparameters, string expected)
    {
        var members = new[] { "a", "b", "c" }.Select(n => ScriptedChatClient.Model(n, _ => "x").Descriptor).ToList();
        var e = Assert.Throws<ConfigException>(() => MethodHarness.Plan(new StructuredInteractionMethod(), members, hyperparameters));
        Assert.Contains(expected, e.Message);
    }

    private static readonly string Graph = Prompts(("first", "F:{question}"), ("middle", "M:{previous_inline}"), ("last", "L:{previous_inline}"));

    [Fact]
    public async Task A_swarm_graph_passes_outputs_along_its_edges()
    {
        var m = new[] { M("a"), M("b"), M("c"), M("d") };
        // a -> c, b -> c, c -> d: a and b start, c combines them, d answers.
        var s = await MethodHarness.CreateAsync(new HeterogeneousSwarmsMethod(), m,
            $$"""{"graph": [[0,0,1,0],[0,0,1,0],[0,0,0,1],[0,0,0,0]], "prompts": {{Graph}}}""");
        var r = await s.Chat.GetResponseAsync(Q("q"));
        Assert.Equal("F:q", ScriptedChatClient.Of(m[0]).Calls.Single().Prompt);
        Assert.Equal("F:q", ScriptedChatClient.Of(m[1]).Calls.Single().Prompt);
        Assert.Equal("M:a1 | b1", ScriptedChatClient.Of(m[2]).Calls.Single().Prompt);
        Assert.Equal("L:c1", ScriptedChatClient.Of(m[3]).Calls.Single().Prompt);
        Assert.Equal("d1", r.Text);
        Assert.Equal(new[] { "round 0 / first", "round 1 / middle", "round 2 / last" }, r.GetTrace().Select(t => t.Role).Distinct());
    }

    [Fact]
    public void Decoded_swarm_graphs_are_trees_into_one_last_member()
    {
        var rng = new Random(3);
        for (int trial = 0; trial < 200; trial++)
        {
            int n = 2 + trial % 5;
            var x = Enumerable.Range(0, n * n).Select(_ => rng.NextDouble() * 2 - 1).ToArray();
            var g = HeterogeneousSwarmsMethod.DecodeGraph(x, n, trial % 2 == 0 ? 0 : 0.7, new Random(trial));
            Assert.Equal(n - 1, g.Sum(r => r.Sum()));
            Assert.Single(Enumerable.Range(0, n), i => g[i].All(v => v == 0));
            Assert.All(Enumerable.Range(0, n), i => Assert.Equal(0, g[i][i]));
            var levels = HeterogeneousSwarmsMethod.Levels(g); // throws on a cycle
            Assert.Single(levels[^1]);
        }
        // Top-p 0 is deterministic: the strongest choice every time.
        var y = Enumerable.Range(0, 16).Select(i => Math.Sin(i)).ToArray();
        Assert.Equal(HeterogeneousSwarmsMethod.DecodeGraph(y, 4, 0, new Random(1)), HeterogeneousSwarmsMethod.DecodeGraph(y, 4, 0, new Random(2)));
    }

    [Fact]
    public async Task The_swarm_search_is_seeded_scored_on_dev_and_logged()
    {
        // d answers correctly only when it reads b: graphs where b feeds the last member d score 1 on dev.
        var dev = TestFitData.FromPairs([("q1", "ok"), ("q2", "ok")]);
        ConsortModel Node(string name) => ScriptedChatClient.Model(name, c => c.Prompt.Contains("from-b") ? "ok" : name == "b" ? "from-b" : "no");
        async Task<(string Text, List<string> Log)> Run(int seed)
        {
            var log = new List<string>();
            var m = new[] { Node("a"), Node("b"), Node("c"), Node("d") };
            var s = await MethodHarness.CreateAsync(new HeterogeneousSwarmsMethod(), m, $$"""{"population": 4, "max_iterations": 3, "ratio": 1.0, "seed": {{seed}}, "prompts": {{Graph}}}""", dev: dev, log: log.Add);
            return ((await s.Chat.GetResponseAsync(Q("q1"))).Text, log);
        }
        var (text, log) = await Run(7);
        Assert.Equal(3, log.Count(l => l.Contains("swarm iteration")));
        Assert.Contains(log, l => l.Contains("best graph (dev"));
        Assert.Equal(log, (await Run(7)).Log);
        Assert.Throws<ConfigException>(() => MethodHarness.Plan(new HeterogeneousSwarmsMethod(), [Node("a").Descriptor, Node("b").Descriptor], null));
        Assert.NotNull(text);
    }

    [Theory]
    [InlineData("[[0,1,0],[0,0,1],[1,0,0]]", "has a cycle")]
    [InlineData("[[0,1],[1,0]]", "must be 3 x 3")]
    [InlineData("[[0,0,1],[0,0,0],[0,0,0]]", "exactly one last member")]
    [InlineData("[[1,0,1],[0,0,1],[0,0,0]]", "0 on the diagonal")]
    public void A_fixed_swarm_graph_must_be_a_dag_into_one_member(string graph, string expected)
    {
        var members = new[] { "a", "b", "c" }.Select(n => ScriptedChatClient.Model(n, _ => "x").Descriptor).ToList();
        var e = Assert.Throws<ConfigException>(() => MethodHarness.Plan(new HeterogeneousSwarmsMethod(), members, $$"""{"graph": {{graph}}}"""));
        Assert.Contains(expected, e.Message);
    }
}
